// Start the gateway in-process from a YAML string written to a temp dir, as the CLI would.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfigFile } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';

export interface TestGateway {
  gateway: Gateway;
  port: number;
  dir: string;
  configPath: string;
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[];
  /** Rewrite the config file (the watcher or reload() picks it up). */
  write(yaml: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startGateway(yaml: string, opts: { watch?: boolean } = {}): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'dns-tool-gw-'));
  const configPath = join(dir, 'config.yaml');
  await writeFile(configPath, yaml);
  const loaded = await loadConfigFile(configPath);
  if ('problems' in loaded) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `test config invalid:\n${loaded.problems.map((p) => `${p.line}:${p.col}: ${p.message}`).join('\n')}`,
    );
  }
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger(loaded.config.log.level, sink);
  const gateway = await Gateway.start(loaded.config, { logger, configPath, watch: opts.watch ?? false });
  const first = gateway.boundListeners()[0];
  return {
    gateway,
    port: first?.port ?? 0,
    dir,
    configPath,
    logs,
    write: (text: string) => writeFile(configPath, text),
    async stop() {
      await gateway.stop(200);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
