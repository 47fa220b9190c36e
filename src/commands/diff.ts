// Owns `dns-tool diff`: what would change in effect between two configs (listeners,
// upstream sets and servers, policies by field, settings, and the client ranges whose
// policy changes), as lines or as JSON.
import { configDiff, isEmptyDiff, summaryLines } from '../policy/diff.js';
import { EXIT_DIFFERENT, EXIT_INVALID, EXIT_OK, parseArgs, UsageError } from './args.js';
import { loadOrReport } from './explain.js';

export const DIFF_USAGE = `usage: dns-tool diff OLD.yaml NEW.yaml [--json]

Compares two configs by effect, not by text: listeners, upstream sets and servers (pins
added or removed), policies field by field, settings, and the client address ranges whose
policy changes, computed exactly from both CIDR tables (IPv4 and IPv6), as minimal CIDR
blocks: "10.1.5.0/24: office -> guests", "192.0.2.0/24: guests -> (unmatched)".

  --json            one JSON object instead of lines

Exit 0 when nothing changes, 1 when something does, 2 for invalid input.
`;

export async function runDiff(
  argv: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let files: string[];
  let json: boolean;
  try {
    const args = parseArgs(argv, [], ['json', 'help']);
    if (args.switches.has('help')) {
      out.write(DIFF_USAGE);
      return EXIT_OK;
    }
    if (args.positional.length !== 2) throw new UsageError('give exactly two files: OLD.yaml NEW.yaml');
    files = args.positional;
    json = args.switches.has('json');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err.write(`dns-tool diff: ${error.message}\n${DIFF_USAGE}`);
    return EXIT_INVALID;
  }
  // Both are loaded (and both reported) before either verdict.
  const before = await loadOrReport(files[0], err);
  const after = await loadOrReport(files[1], err);
  if (before === null || after === null) return EXIT_INVALID;
  const diff = configDiff(before, after);
  if (json) out.write(`${JSON.stringify(diff, null, 2)}\n`);
  else for (const line of summaryLines(diff)) out.write(`${line}\n`);
  return isEmptyDiff(diff) ? EXIT_OK : EXIT_DIFFERENT;
}
