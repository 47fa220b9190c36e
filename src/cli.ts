#!/usr/bin/env node
// Commands, flags (including the original tool's), signals and exit codes.
import { readFileSync } from 'node:fs';
import { runDiff } from './commands/diff.js';
import { runExplain } from './commands/explain.js';
import { runPin } from './commands/pin.js';
import { runTest } from './commands/test.js';
import { configFromFlags } from './config/flags.js';
import { ConfigError, type LoadedConfig, loadConfigFile, loadConfigSource } from './config/load.js';
import type { GatewayConfig } from './config/types.js';
import { ExitCode } from './exit-codes.js';
import { Gateway } from './gateway.js';
import { createLogger } from './log.js';
import { runPrimary } from './workers/primary.js';
import { isGatewayWorker, runWorker } from './workers/worker.js';

const USAGE = `dns-tool — DNS policy gateway: plain DNS in, per-network policy, pinned DNS-over-TLS out

Usage:
  dns-tool --config FILE              run the gateway (also: dns-tool serve --config FILE)
  dns-tool check FILE                 validate a config; prints FILE:LINE:COL: message per problem
  dns-tool pin HOST[:PORT] [--name TLS_NAME]
                                      show the SPKI pins of a DoT server's certificate chain
  dns-tool explain [--config FILE] --client IP [--type T] [--transport udp|tcp|tls|https] [--json] NAME
                                      offline: what the config does with this query, step by step
  dns-tool test [--config FILE] CASES.yaml...
                                      offline: run policy test cases; exit 1 if any fails
  dns-tool diff OLD.yaml NEW.yaml [--json]
                                      what would change in effect; exit 1 if anything does
  dns-tool -address A -port P -resolver-addr IP:PORT -resolver-fqdn NAME -resolver-pin PIN -timeout S
                                      the original flags (single or double dash)
  dns-tool --help | --version

Signals: SIGHUP reloads the config file; SIGTERM/SIGINT drain and exit 0.
Exit codes: 0 ok, 1 invalid config, 2 usage error, 3 could not start (e.g. port in use).
explain, test and diff: 0 ok (no failure, no change), 1 a case failed / the configs differ,
2 invalid input (usage, a config or test file that does not load).
\`dns-tool COMMAND --help\` describes explain, test, diff and pin.`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help' || first === '-help') {
    process.stdout.write(`${USAGE}\n`);
    return ExitCode.ok;
  }
  if (first === '--version' || first === '-version' || first === '-v') {
    process.stdout.write(`dns-tool ${version()}\n`);
    return ExitCode.ok;
  }
  if (first === 'check') {
    if (rest.length !== 1) return usage('check takes exactly one FILE');
    return check(rest[0]);
  }
  if (first === 'pin') return runPin(rest, process.stdout, process.stderr);
  if (first === 'explain') return runExplain(rest, process.stdout, process.stderr);
  if (first === 'test') return runTest(rest, process.stdout, process.stderr);
  if (first === 'diff') return runDiff(rest, process.stdout, process.stderr);
  if (first === 'serve') return serveFromArgs(rest);
  if (first === undefined) return usage('no config given');
  return serveFromArgs(argv);
}

function usage(message: string): number {
  process.stderr.write(`dns-tool: ${message}\n\n${USAGE}\n`);
  return ExitCode.usage;
}

async function check(path: string): Promise<number> {
  const loaded = await loadConfigFile(path);
  if ('problems' in loaded) {
    process.stderr.write(`${new ConfigError(path, loaded.problems).format()}\n`);
    return ExitCode.invalidConfig;
  }
  process.stdout.write(`${path}: ok\n`);
  return ExitCode.ok;
}

async function serveFromArgs(args: string[]): Promise<number> {
  let configPath: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--config' || a === '-config' || a === '-c') configPath = args[++i] ?? null;
    else if (a.startsWith('--config=')) configPath = a.slice('--config='.length);
  }
  let config: GatewayConfig;
  let loaded: LoadedConfig | null = null;
  if (configPath !== null) {
    if (args.length !== 2 && !(args.length === 1 && args[0].startsWith('--config='))) {
      return usage(`unexpected arguments beside --config: ${args.join(' ')}`);
    }
    // `workers: N > 1` splits serving over N processes (src/workers/); the same command line
    // runs in each, and this is where the roles part. A worker runs the config its primary
    // validated and hands it, never the file as it is now (it may have changed since).
    if (isGatewayWorker()) return runWorker();
    const fromFile = await loadConfigSource(configPath);
    if ('problems' in fromFile) {
      process.stderr.write(`${new ConfigError(configPath, fromFile.problems).format()}\n`);
      return ExitCode.invalidConfig;
    }
    config = fromFile.config;
    loaded = fromFile;
  } else {
    let fromFlags: GatewayConfig | null;
    try {
      fromFlags = configFromFlags(args);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.format()}\n`);
        return ExitCode.usage;
      }
      throw err;
    }
    if (fromFlags === null) return usage(`unknown arguments: ${args.join(' ')}`);
    config = fromFlags;
  }
  return serve(config, configPath, loaded);
}

async function serve(
  config: GatewayConfig,
  configPath: string | null,
  loaded: LoadedConfig | null,
): Promise<number> {
  const logger = createLogger(config.log.level);
  // `workers` only exists in config files; the primary hands what it loaded to every worker.
  if (loaded !== null && config.workers > 1) return runPrimary({ loaded, logger });
  // Signals are taken from the first moment: Node's default for SIGHUP would kill a gateway
  // that is still starting. What arrives during startup is acted on once it is up.
  let gateway: Gateway | null = null;
  let reloadPending = false;
  let stopSignal: string | null = null;
  let onStop: (signal: string) => void = (signal) => {
    stopSignal ??= signal;
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => {
    if (configPath === null) {
      logger.warn('SIGHUP ignored: running from flags, there is no config file to reload');
      return;
    }
    if (gateway === null) reloadPending = true;
    else void gateway.reload();
  });

  try {
    gateway = await Gateway.start(config, { logger, configPath: configPath ?? undefined });
  } catch (err) {
    logger.fatal({ err }, 'could not start');
    logger.flush();
    process.stderr.write(`dns-tool: ${(err as Error).message}\n`);
    return ExitCode.cannotStart;
  }
  const running = gateway;
  return new Promise<number>((resolve) => {
    let stopping = false;
    onStop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, inflight: running.inFlight }, 'stopping: draining in-flight queries');
      running.stop().then(() => {
        logger.info('stopped');
        logger.flush();
        resolve(ExitCode.ok);
      });
    };
    if (stopSignal !== null) onStop(stopSignal);
    else if (reloadPending) void running.reload();
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Unref'd timers and closed sockets let the loop end; force it only if something lingers.
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (err) => {
    process.stderr.write(`dns-tool: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(ExitCode.cannotStart);
  },
);
