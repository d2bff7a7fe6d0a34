/**
 * npm run bench:policy — the Postfix policy server per request, as Postfix drives it: one
 * request at a time per connection (Postfix waits for each answer), over real sockets.
 *
 * Requests: the RCPT requests of the Postfix 3.7 captures (test/postfix-policy/fixtures: scanner
 * relay, accepted domains, a TLS client certificate, SASL submission) and the scanner relay from
 * an outside address (refused), cycled; decided by the real policy on examples/northwind.yaml.
 * Measured: requests/s and the time from writing a request to reading its whole answer
 * (p50/p99/max), for
 *   - in-process: `answerRequest` without sockets (the decision itself),
 *   - one connection, over TCP (127.0.0.1) and a unix socket,
 *   - N concurrent connections (default 8 and 64), TCP.
 * The clients run in a worker thread (their own event loop, as Postfix is its own process), the
 * server and the engine in the main thread. Bounded: each measurement stops at its request
 * count or its time budget, whichever first, after a warm-up. The logger is a no-op by default; `--pino` logs every decision and answer
 * with pino at info to /dev/null, as `serve` would.
 * Options: --quick, --requests N, --seconds S, --conns 8,64, --pino, --json FILE.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import type { PolicyRequest } from '../../adapters/postfix-policy/codec.js';
import type { ListenAddress } from '../../adapters/shared/listen.js';
import { PolicyServer } from '../../adapters/postfix-policy/server.js';
import { answerRequest } from '../../adapters/postfix-policy/session.js';
import type { AdapterLogger } from '../../adapters/shared/logger.js';
import { Engine } from '../../engine/engine.js';
import { CAPTURES, INTERNET_IP, PolicyClient, capturedRequests, northwindOnLoopback } from '../postfix-policy/helpers.js';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
const quick = argv.includes('--quick');
const REQUESTS = Number(flag('--requests') ?? (quick ? 2_000 : 20_000));
const SECONDS = Number(flag('--seconds') ?? (quick ? 2 : 10));
const WARMUP = Math.min(2_000, Math.ceil(REQUESTS / 10));
const CONNS = (flag('--conns') ?? '8,64').split(',').map(Number).filter((n) => n > 0);

/** What the worker is asked to do. */
interface ClientJob {
  readonly address: ListenAddress;
  readonly lanes: number;
  readonly requests: ReadonlyArray<ReadonlyArray<readonly [string, string]>>;
  readonly count: number;
  readonly seconds: number;
  readonly warmup: number;
}

interface Result {
  readonly name: string;
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

function summarise(name: string, latenciesNs: number[], elapsedNs: number): Result {
  const sorted = Float64Array.from(latenciesNs).sort();
  const q = (p: number): number => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) / 1_000);
  const seconds = elapsedNs / 1e9;
  return { name, requests: sorted.length, seconds: Math.round(seconds * 100) / 100, rps: Math.round(sorted.length / seconds), p50Us: q(0.5), p99Us: q(0.99), maxUs: Math.round((sorted[sorted.length - 1] ?? 0) / 1_000) };
}

/** Every answer must be the one the policy gives: OK, or the refusal of the outside relay (the last kind). */
function check(action: string, i: number, kinds: number): void {
  const refused = i % kinds === kinds - 1;
  if (refused ? !action.startsWith('550 5.7.54 ') : action !== 'OK') throw new Error(`request ${i}: unexpected answer ${action}`);
}

/** Runs `one(lane, i)` sequentially on `lanes` lanes until `count` requests or `seconds` in total. */
async function measure(lanes: number, count: number, seconds: number, warmup: number, kinds: number, one: (lane: number, i: number) => Promise<string>): Promise<{ latencies: number[]; elapsedNs: number }> {
  for (let i = 0; i < warmup; i++) check(await one(0, i), i, kinds);
  const latencies: number[] = [];
  let issued = 0;
  const start = process.hrtime.bigint();
  const stop = start + BigInt(Math.round(seconds * 1e9));
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    while (issued < count && process.hrtime.bigint() < stop) {
      const i = issued++;
      const t = process.hrtime.bigint();
      check(await one(lane, i), i, kinds);
      latencies.push(Number(process.hrtime.bigint() - t));
    }
  }));
  return { latencies, elapsedNs: Number(process.hrtime.bigint() - start) };
}

/** Worker side: `lanes` connections, one request at a time on each. */
async function runClients(job: ClientJob): Promise<{ latencies: number[]; elapsedNs: number }> {
  const reqs = job.requests.map((r) => new Map(r));
  const cs = await Promise.all(Array.from({ length: job.lanes }, () => PolicyClient.open(job.address)));
  try {
    return await measure(job.lanes, job.count, job.seconds, job.warmup, reqs.length, (lane, i) => (cs[lane] as PolicyClient).ask(reqs[i % reqs.length] as PolicyRequest));
  } finally {
    for (const c of cs) c.close();
  }
}

if (!isMainThread) {
  parentPort?.postMessage(await runClients(workerData as ClientJob));
} else {
  await main();
}

async function main(): Promise<void> {
  const silent: AdapterLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silent };
  const logger: AdapterLogger = argv.includes('--pino') ? (pino({ level: 'info' }, pino.destination('/dev/null')) as unknown as AdapterLogger) : silent;

  /** The ports Postfix listened on when the captures were made (fixtures/README.md). */
  const engine = await Engine.create({ config: northwindOnLoopback({ smtp: [40103], submission: [40493] }), logger });
  const rcpts: PolicyRequest[] = CAPTURES.flatMap((c) => capturedRequests(c).filter((r) => r.get('protocol_state') === 'RCPT'));
  const scanner = rcpts[0];
  if (scanner === undefined) throw new Error('no captured RCPT request');
  const requests: PolicyRequest[] = [...rcpts, new Map([...scanner, ['client_address', INTERNET_IP]])];

  const kinds = requests.length;
  /** The clients in a worker thread against `address`. */
  const remote = (address: ListenAddress, lanes: number): Promise<{ latencies: number[]; elapsedNs: number }> =>
    new Promise((resolve, reject) => {
      const job: ClientJob = { address, lanes, requests: requests.map((r) => [...r]), count: REQUESTS, seconds: SECONDS, warmup: WARMUP };
      const w = new Worker(new URL(import.meta.url), { workerData: job });
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`client worker exited ${code}`))));
    });
  const results: Result[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'policy-bench-'));
  try {
    const local = await measure(1, REQUESTS, SECONDS, WARMUP, kinds, async (_l, i) => (await answerRequest(engine, requests[i % kinds] as PolicyRequest)).action);
    results.push(summarise('in-process answerRequest (no sockets)', local.latencies, local.elapsedNs));
    for (const [label, listen] of [['TCP', 'inet:0@127.0.0.1'], ['unix', `unix:${join(dir, 'policy.sock')}`]] as const) {
      const server = await PolicyServer.start({ listen, engine, logger });
      try {
        for (const n of label === 'TCP' ? [1, ...CONNS] : [1]) {
          const r = await remote(server.address, n);
          results.push(summarise(`${n} connection${n === 1 ? '' : 's'}, ${label}`, r.latencies, r.elapsedNs));
        }
      } finally {
        await server.close(1_000);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  const rows = results.map((r) => `| ${r.name} | ${r.requests} | ${r.seconds} | ${r.rps} | ${r.p50Us} | ${r.p99Us} | ${r.maxUs} |`);
  console.log(`Postfix policy server, per request (${kinds} request kinds cycled; logger: ${logger === silent ? 'none' : 'pino → /dev/null'}; node ${process.version}; ${cpus().length} CPUs, load average ${load} at the end)\n`);
  console.log('| measurement | requests | s | requests/s | p50 µs | p99 µs | max µs |\n|---|---|---|---|---|---|---|');
  console.log(rows.join('\n'));
  const out = flag('--json');
  if (out !== undefined) await writeFile(out, `${JSON.stringify({ node: process.version, cpus: cpus().length, loadavg: loadavg(), results }, null, 2)}\n`);
}
