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
 * Bounded: each measurement stops at its request count or its time budget, whichever first,
 * after a warm-up. The logger is a no-op by default; `--pino` logs every decision and answer
 * with pino at info to /dev/null, as `serve` would.
 * Options: --quick, --requests N, --seconds S, --conns 8,64, --pino, --json FILE.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { PolicyRequest } from '../../adapters/postfix-policy/codec.js';
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

const silent: AdapterLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silent };
const logger: AdapterLogger = argv.includes('--pino') ? (pino({ level: 'info' }, pino.destination('/dev/null')) as unknown as AdapterLogger) : silent;

/** The ports Postfix listened on when the captures were made (fixtures/README.md). */
const engine = await Engine.create({ config: northwindOnLoopback({ smtp: [40103], submission: [40493] }), logger });
const rcpts: PolicyRequest[] = CAPTURES.flatMap((c) => capturedRequests(c).filter((r) => r.get('protocol_state') === 'RCPT'));
const scanner = rcpts[0];
if (scanner === undefined) throw new Error('no captured RCPT request');
const requests: PolicyRequest[] = [...rcpts, new Map([...scanner, ['client_address', INTERNET_IP]])];

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

/** Runs `one(i)` sequentially on `lanes` lanes until `count` requests or `seconds` in total. */
async function measure(name: string, lanes: number, one: (lane: number, i: number) => Promise<string>): Promise<Result> {
  for (let i = 0; i < WARMUP; i++) check(await one(0, i), i);
  const lat: number[] = [];
  let issued = 0;
  const start = process.hrtime.bigint();
  const stop = start + BigInt(SECONDS * 1e9);
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    while (issued < REQUESTS && process.hrtime.bigint() < stop) {
      const i = issued++;
      const t = process.hrtime.bigint();
      check(await one(lane, i), i);
      lat.push(Number(process.hrtime.bigint() - t));
    }
  }));
  return summarise(name, lat, Number(process.hrtime.bigint() - start));
}

/** Every answer must be the one the policy gives: OK, or the refusal of the outside relay. */
function check(action: string, i: number): void {
  const refused = i % requests.length === requests.length - 1;
  if (refused ? !action.startsWith('550 5.7.54 ') : action !== 'OK') throw new Error(`request ${i}: unexpected answer ${action}`);
}

const req = (i: number): PolicyRequest => requests[i % requests.length] as PolicyRequest;
const results: Result[] = [];
const dir = await mkdtemp(join(tmpdir(), 'policy-bench-'));
try {
  results.push(await measure('in-process answerRequest', 1, async (_l, i) => (await answerRequest(engine, req(i))).action));
  for (const [label, listen] of [['TCP', 'inet:0@127.0.0.1'], ['unix', `unix:${join(dir, 'policy.sock')}`]] as const) {
    const server = await PolicyServer.start({ listen, engine, logger });
    try {
      const c = await PolicyClient.open(server.address);
      results.push(await measure(`1 connection, ${label}`, 1, (_l, i) => c.ask(req(i))));
      c.close();
      if (label === 'TCP') {
        for (const n of CONNS) {
          const cs = await Promise.all(Array.from({ length: n }, () => PolicyClient.open(server.address)));
          results.push(await measure(`${n} connections, ${label}`, n, (lane, i) => (cs[lane] as PolicyClient).ask(req(i))));
          for (const x of cs) x.close();
        }
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
console.log(`Postfix policy server, per request (${requests.length} request kinds cycled; logger: ${logger === silent ? 'none' : 'pino → /dev/null'}; node ${process.version}; ${cpus().length} CPUs, load average ${load} at the end)\n`);
console.log('| measurement | requests | s | requests/s | p50 µs | p99 µs | max µs |\n|---|---|---|---|---|---|---|');
console.log(rows.join('\n'));
const out = flag('--json');
if (out !== undefined) await writeFile(out, `${JSON.stringify({ node: process.version, cpus: cpus().length, loadavg: loadavg(), results }, null, 2)}\n`);
