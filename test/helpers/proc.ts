// Child processes for end-to-end tests: bounded one-shot commands (kdig,
// openssl, the `check` command), and the built gateway CLI run in the foreground with its logs.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built CLI (`npm run build`); the e2e tests run what users run, not the sources. */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** Output kept per stream of a one-shot command; more is cut (a runaway command cannot exhaust memory). */
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;
/** Gateway log lines kept; older lines are dropped first. */
const MAX_LOG_LINES = 5000;

export function requireBuiltCli(): string {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
  return CLI_PATH;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Killed (SIGKILL) after this long; the result then has `signal` set. */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Runs a command to completion with bounded time and output; never rejects for a non-zero exit. */
export function runProcess(
  command: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      if (outBytes < MAX_OUTPUT_BYTES) out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (errBytes < MAX_OUTPUT_BYTES) err.push(chunk);
      errBytes += chunk.length;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** One pino JSON line as logged by the gateway (non-JSON lines are kept as `{ msg: line }`). */
export interface LogLine {
  readonly msg?: string;
  readonly level?: number;
  readonly [key: string]: unknown;
}

export interface GatewayProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Log lines so far (the last MAX_LOG_LINES). */
  readonly logs: readonly LogLine[];
  /** Everything on stderr so far (bounded). */
  stderr(): string;
  /** Resolves with the first line (already logged or future) that matches; rejects on timeout or exit. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  /** Sends `signal` (default SIGTERM), SIGKILL after `killAfterMs`; resolves with how it exited. */
  stop(
    signal?: NodeJS.Signals,
    killAfterMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartGatewayOptions {
  /** CLI arguments, e.g. ['--config', file] or the original flags. */
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Time allowed until the "gateway ready" line. */
  readonly readyTimeoutMs?: number;
}

/**
 * Spawns `node dist/cli.js ...args` and resolves once it logs "gateway ready". If it exits or times
 * out first, the process is killed and the rejection carries its last output.
 */
export async function startGateway(opts: StartGatewayOptions): Promise<GatewayProcess> {
  const cli = requireBuiltCli();
  const child = spawn(process.execPath, [cli, ...opts.args], {
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let stderrText = '';
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  const exitWaiters = new Set<() => void>();

  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    let nl = partial.indexOf('\n');
    while (nl !== -1) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      nl = partial.indexOf('\n');
      if (text.trim() === '') continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text };
      }
      logs.push(line);
      if (logs.length > MAX_LOG_LINES) logs.shift();
      for (const waiter of waiters) {
        if (waiter.match(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderrText.length < MAX_OUTPUT_BYTES) stderrText += chunk;
  });
  const exitPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      for (const notify of exitWaiters) notify();
      exitWaiters.clear();
      resolve(exited);
    });
  });

  const describe = (): string =>
    `stdout tail:\n${logs
      .slice(-20)
      .map((l) => JSON.stringify(l))
      .join('\n')}\nstderr:\n${stderrText.slice(-4000)}`;

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          exitWaiters.delete(onExit);
          resolve(l);
        },
      };
      const onExit = (): void => {
        clearTimeout(timer);
        waiters.delete(waiter);
        reject(
          new Error(`gateway exited (${JSON.stringify(exited)}) before the awaited log line\n${describe()}`),
        );
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        exitWaiters.delete(onExit);
        reject(new Error(`awaited log line not seen within ${timeoutMs} ms\n${describe()}`));
      }, timeoutMs);
      waiters.add(waiter);
      if (exited) onExit();
      else exitWaiters.add(onExit);
    });
  };

  const stop = async (
    signal: NodeJS.Signals = 'SIGTERM',
    killAfterMs = 5000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (exited) return exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    const result = await exitPromise;
    clearTimeout(timer);
    return result;
  };

  const proc: GatewayProcess = {
    pid: child.pid ?? -1,
    child,
    logs,
    stderr: () => stderrText,
    waitForLog,
    stop,
  };
  try {
    await waitForLog((l) => l.msg === 'gateway ready', opts.readyTimeoutMs ?? 15_000);
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  }
  return proc;
}

/** Runs `node dist/cli.js ...args` to completion (e.g. the `check` command). */
export function runCli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(process.execPath, [requireBuiltCli(), ...args], opts);
}

/** One resource record of a kdig RFC 8427 JSON answer. */
export interface KdigRecord {
  readonly name: string;
  readonly type: string;
  readonly ttl: number;
  /** The record's presentation-format RDATA, as kdig prints it. */
  readonly data: string;
}

export interface KdigAnswer {
  readonly id: number;
  readonly rcode: string;
  readonly tc: boolean;
  readonly answers: readonly KdigRecord[];
  /** The whole RFC 8427 object, for assertions on other fields. */
  readonly raw: unknown;
}

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/**
 * Runs kdig with RFC 8427 JSON output and returns the header and answer section. Rejects when kdig
 * gets no answer (it exits non-zero), so a dropped query is an error, not an empty answer.
 */
export async function kdig(args: readonly string[], timeoutMs = 10_000): Promise<KdigAnswer> {
  const result = await runProcess('kdig', ['+json', '+timeout=2', '+retry=0', ...args], { timeoutMs });
  const start = result.stdout.indexOf('{');
  if (result.code !== 0 || start === -1) {
    throw new Error(`kdig ${args.join(' ')} failed (exit ${result.code}): ${result.stdout}${result.stderr}`);
  }
  const json = JSON.parse(result.stdout.slice(start)) as {
    ID: number;
    RCODE: number;
    TC: boolean | number;
    answerRRs?: Array<Record<string, unknown>>;
  };
  const answers: KdigRecord[] = (json.answerRRs ?? []).map((rr) => {
    const type = String(rr.TYPEname ?? rr.TYPE);
    const dataKey = Object.keys(rr).find((k) => k.startsWith('rdata'));
    return {
      name: String(rr.NAME).toLowerCase(),
      type,
      ttl: Number(rr.TTL),
      data: dataKey === undefined ? '' : String(rr[dataKey]),
    };
  });
  return {
    id: json.ID,
    rcode: RCODE_NAMES[json.RCODE] ?? String(json.RCODE),
    tc: json.TC === true || json.TC === 1,
    answers,
    raw: json,
  };
}
