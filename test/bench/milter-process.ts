/**
 * mta-policy's milter as a process of its own, for the tests and benchmarks that need one to
 * kill (SIGKILL: "mta-policy killed") or to measure (RSS): `startMilter` on an engine loaded
 * from a configuration file, nothing else. It stands in for `mta-policy serve` (a separate
 * command) so that these tests do not depend on it.
 *
 *   node dist/test/bench/milter-process.js --config F --listen inet:0@127.0.0.1 [--log FILE] [--log-level info] [--socket-mode 660]
 *
 * Prints one line `listening <address>` (our `inet:PORT@HOST` / `unix:/path` syntax) on stdout
 * once the listener is up, `failed <message>` and exit 1 when it cannot start. SIGTERM closes
 * the listener gracefully (5 s deadline) and exits 0. Decisions are logged with pino at
 * `--log-level` (default info) to `--log` (default: discarded), asynchronously in 8 KiB
 * writes, as a production deployment would log them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startMilter } from '../../adapters/milter/enforce.js';
import { formatListen } from '../../adapters/milter/listen.js';
import { projectRoot } from '../../engine/bundle.js';
import { loadConfig } from '../../engine/config/load.js';
import { Engine } from '../../engine/engine.js';

/** A started milter process. */
export interface MilterProcess {
  readonly pid: number;
  /** Where it listens, `inet:PORT@HOST` or `unix:/path`. */
  readonly listen: string;
  readonly child: ChildProcess;
  /** Resident set size (kB) from /proc/PID/status, or 0 once it has exited. */
  rssKb(): Promise<number>;
  /** SIGKILL, as a crash or the OOM killer would. */
  kill(): Promise<void>;
  /** SIGTERM: graceful close. */
  stop(): Promise<void>;
}

const HERE = fileURLToPath(import.meta.url);
/** The compiled script (vitest runs this module from its .ts source; node runs dist/). */
const SCRIPT = HERE.endsWith('.ts') ? join(projectRoot(), 'dist', 'test', 'bench', 'milter-process.js') : HERE;

/** Starts the milter process; rejects with its message when it cannot listen. */
export async function spawnMilterProcess(opts: {
  config: string;
  listen: string;
  log?: string;
  logLevel?: string;
  /** Unix socket mode, e.g. 0o666 so that Postfix's unprivileged smtpd may connect in a test. */
  socketMode?: number;
  timeoutMs?: number;
}): Promise<MilterProcess> {
  if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: run npm run build first`);
  const args = [SCRIPT, '--config', opts.config, '--listen', opts.listen];
  if (opts.socketMode !== undefined) args.push('--socket-mode', opts.socketMode.toString(8));
  if (opts.log !== undefined) args.push('--log', opts.log);
  if (opts.logLevel !== undefined) args.push('--log-level', opts.logLevel);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`milter process: no "listening" line within ${opts.timeoutMs ?? 15_000} ms`)), opts.timeoutMs ?? 15_000);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`milter process exited ${code ?? 'on a signal'}: ${out.trim()}`));
    });
  }).catch(async (e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  if (!line.startsWith('listening ')) {
    child.kill('SIGKILL');
    throw new Error(`milter process: ${line}`);
  }
  const pid = child.pid as number;
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(sig);
    await exited;
  };
  return {
    pid,
    listen: line.slice('listening '.length),
    child,
    async rssKb() {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    },
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

async function run(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, listen: { type: 'string' }, log: { type: 'string' }, 'log-level': { type: 'string' }, 'socket-mode': { type: 'string' } } });
  if (values.config === undefined || values.listen === undefined) throw new Error('usage: milter-process --config F --listen ADDR [--log FILE] [--log-level L]');
  const dest = values.log === undefined ? pino.destination({ dest: '/dev/null', sync: false }) : pino.destination({ dest: values.log, sync: false, mkdir: true, minLength: 8_192 });
  const logger = pino({ level: values['log-level'] ?? 'info' }, dest);
  const engine = await Engine.create({ config: await loadConfig(values.config), logger });
  const mode = values['socket-mode'];
  const milter = await startMilter(engine, { listen: values.listen, logger, ...(mode === undefined ? {} : { socketMode: parseInt(mode, 8) }) });
  process.stdout.write(`listening ${formatListen(milter.address)}\n`);
  process.once('SIGTERM', () => {
    void milter.close(5_000).then(() => {
      try {
        dest.flushSync();
      } catch {
        // not open yet: nothing was written
      }
      process.exit(0);
    });
  });
}

if (process.argv[1] === HERE) {
  run().catch((e: unknown) => {
    process.stdout.write(`failed ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
