/**
 * mta-policy's milter as a process of its own, for the tests and benchmarks that need one to
 * kill (SIGKILL: "mta-policy killed") or to measure (RSS): `startMilter` on an engine loaded
 * from a configuration file, nothing else. It stands in for `mta-policy serve` (a separate
 * command) so that these tests do not depend on it.
 *
 *   node dist/test/bench/milter-process.js --config F --listen inet:0@127.0.0.1 [--policy-listen ADDR]
 *       [--log FILE] [--log-level info] [--socket-mode 660]
 *
 * `--policy-listen` adds the Postfix policy server on the same engine, as `serve` runs both
 * adapters in one process. Prints one line `listening <milter address>[ policy <address>]` (our
 * `inet:PORT@HOST` / `unix:/path` syntax) on stdout once the listeners are up, `failed
 * <message>` and exit 1 when one cannot start. SIGTERM closes them gracefully (5 s deadline)
 * and exits 0. Decisions are logged with pino at `--log-level` (default info) to `--log`
 * (default: discarded), asynchronously in 8 KiB writes, as a production deployment would log them.
 *
 * The policy server's time per request is measured in this process: from the engine session the
 * request opens (after decoding) to its close (decided), kept for the last POLICY_SAMPLES
 * requests. SIGUSR2 prints `policy-stats <json>` ({@link PolicyStats}) and starts afresh.
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
import { PolicyServer } from '../../adapters/postfix-policy/server.js';
import type { PolicyEngine } from '../../adapters/postfix-policy/session.js';
import { projectRoot } from '../../engine/bundle.js';
import { loadConfig } from '../../engine/config/load.js';
import { Engine } from '../../engine/engine.js';

/** The policy server's requests since the last read: how many, and the time each took (µs). */
export interface PolicyStats {
  readonly requests: number;
  /** Over the last {@link POLICY_SAMPLES} requests at most. */
  readonly samples: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/** Bound on the request timings kept between two reads (a ring; 800 KB). */
export const POLICY_SAMPLES = 100_000;

/** A started milter process. */
export interface MilterProcess {
  readonly pid: number;
  /** Where it listens, `inet:PORT@HOST` or `unix:/path`. */
  readonly listen: string;
  /** Where its policy server listens (with `policyListen`). */
  readonly policyListen: string | undefined;
  readonly child: ChildProcess;
  /** The policy server's timings since the last call (SIGUSR2; rejects after 5 s without an answer). */
  policyStats(): Promise<PolicyStats>;
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
  /** Also start the policy server here (`inet:PORT@HOST`, `unix:/path`). */
  policyListen?: string;
  log?: string;
  logLevel?: string;
  /** Unix socket mode, e.g. 0o666 so that Postfix's unprivileged smtpd may connect in a test. */
  socketMode?: number;
  timeoutMs?: number;
}): Promise<MilterProcess> {
  if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: run npm run build first`);
  const args = [SCRIPT, '--config', opts.config, '--listen', opts.listen];
  if (opts.policyListen !== undefined) args.push('--policy-listen', opts.policyListen);
  if (opts.socketMode !== undefined) args.push('--socket-mode', opts.socketMode.toString(8));
  if (opts.log !== undefined) args.push('--log', opts.log);
  if (opts.logLevel !== undefined) args.push('--log-level', opts.logLevel);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  // stdout, line by line: the first line answers the start, `policy-stats` lines the reads.
  const statsWaiting: Array<(s: PolicyStats) => void> = [];
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let first = true;
    const timer = setTimeout(() => reject(new Error(`milter process: no "listening" line within ${opts.timeoutMs ?? 15_000} ms`)), opts.timeoutMs ?? 15_000);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const l = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (first) {
          first = false;
          clearTimeout(timer);
          resolve(l);
        } else if (l.startsWith('policy-stats ')) statsWaiting.shift()?.(JSON.parse(l.slice('policy-stats '.length)) as PolicyStats);
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
  const m = /^listening (\S+)(?: policy (\S+))?$/.exec(line);
  return {
    pid,
    listen: m?.[1] ?? '',
    policyListen: m?.[2],
    child,
    policyStats() {
      return new Promise<PolicyStats>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('milter process: no policy-stats within 5 s')), 5_000);
        statsWaiting.push((st) => {
          clearTimeout(timer);
          resolve(st);
        });
        child.kill('SIGUSR2');
      });
    },
    async rssKb() {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    },
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

async function run(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, listen: { type: 'string' }, 'policy-listen': { type: 'string' }, log: { type: 'string' }, 'log-level': { type: 'string' }, 'socket-mode': { type: 'string' } } });
  if (values.config === undefined || values.listen === undefined) throw new Error('usage: milter-process --config F --listen ADDR [--log FILE] [--log-level L]');
  const dest = values.log === undefined ? pino.destination({ dest: '/dev/null', sync: false }) : pino.destination({ dest: values.log, sync: false, mkdir: true, minLength: 8_192 });
  const logger = pino({ level: values['log-level'] ?? 'info' }, dest);
  const engine = await Engine.create({ config: await loadConfig(values.config), logger });
  const mode = values['socket-mode'];
  const socketMode = mode === undefined ? {} : { socketMode: parseInt(mode, 8) };
  const milter = await startMilter(engine, { listen: values.listen, logger, ...socketMode });
  const timings = new Timings();
  const policyAt = values['policy-listen'];
  const policy = policyAt === undefined ? undefined : await PolicyServer.start({ listen: policyAt, engine: timedEngine(engine, timings), logger, ...socketMode });
  process.stdout.write(`listening ${formatListen(milter.address)}${policy === undefined ? '' : ` policy ${formatListen(policy.address)}`}\n`);
  process.on('SIGUSR2', () => process.stdout.write(`policy-stats ${JSON.stringify(timings.take())}\n`));
  process.once('SIGTERM', () => {
    void Promise.all([milter.close(5_000), policy?.close(5_000)]).then(() => {
      try {
        dest.flushSync();
      } catch {
        // not open yet: nothing was written
      }
      process.exit(0);
    });
  });
}

/** Request timings (µs) in a bounded ring, with the count since the last {@link Timings.take}. */
class Timings {
  private readonly ring = new Float64Array(POLICY_SAMPLES);
  private count = 0;

  add(us: number): void {
    this.ring[this.count++ % POLICY_SAMPLES] = us;
  }

  take(): PolicyStats {
    const n = Math.min(this.count, POLICY_SAMPLES);
    const xs = this.ring.slice(0, n).sort();
    const q = (p: number): number => Math.round(xs[Math.min(n - 1, Math.floor(p * n))] ?? 0);
    const stats = { requests: this.count, samples: n, meanUs: n === 0 ? 0 : Math.round(xs.reduce((a, b) => a + b, 0) / n), p50Us: q(0.5), p99Us: q(0.99), maxUs: Math.round(xs[n - 1] ?? 0) };
    this.count = 0;
    return stats;
  }
}

/**
 * `engine` as the policy server sees it, timing each request: a request opens one engine
 * session after decoding and closes it once decided (adapters/postfix-policy/session.ts), so
 * open → close is the policy server's work per request but for decoding and writing the answer.
 */
function timedEngine(engine: Engine, timings: Timings): PolicyEngine {
  return {
    get config() {
      return engine.config;
    },
    get counters() {
      return engine.counters;
    },
    session(init, options) {
      const start = process.hrtime.bigint();
      const s = engine.session(init, options);
      return new Proxy(s, {
        get(target, prop) {
          const v: unknown = Reflect.get(target, prop, target);
          if (typeof v !== 'function') return v;
          if (prop !== 'close') return (v as (...a: unknown[]) => unknown).bind(target);
          return () => {
            timings.add(Number(process.hrtime.bigint() - start) / 1_000);
            return (v as () => Promise<void>).call(target);
          };
        },
      });
    },
  };
}

if (process.argv[1] === HERE) {
  run().catch((e: unknown) => {
    process.stdout.write(`failed ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
