/**
 * What the adapters' real path costs in CPU, per unit of work, measured on the thread that runs
 * the adapter (process.threadCpuUsage), for profiling the engine as the adapters drive it —
 * `engine.session()` per connection, the session document, counters, the decision log line —
 * which `bench:engine` does not exercise.
 *
 *   node dist/test/bench/adapter-cpu.js policy|milter|session [--count N] [--rounds R] [--no-pino]
 *        [--log-dest async8k|async|sync] [--split]
 *
 * - policy: `answerRequest` in process (no sockets) on the captured RCPT requests of
 *   test/postfix-policy/fixtures, cycled (each drives connect → helo → mail → rcpt on a fresh
 *   Session). CPU µs per request.
 * - milter: the real milter server (startMilter on a unix socket, examples/northwind.yaml's
 *   Internet connector bound to 127.0.0.1:2525) driven by MilterClient from a worker thread,
 *   one milter connection per SMTP conversation as Postfix opens them (negotiate, CONNECT,
 *   HELO, MAIL, RCPT, five headers, EOH, body, EOM — accepted — QUIT), against the same
 *   server with a do-nothing handler; rounds interleaved. CPU µs of the server thread per
 *   conversation (the client's CPU is in its own thread and not counted). --split adds the wall
 *   time spent inside engine.session() and the Session's methods.
 * - session: the same conversation on a bare engine Session, no adapter, no sockets (what the
 *   engine costs with hot caches: inside the milter the same calls cost several times as much,
 *   their caches cold after every socket round trip).
 *
 * Decisions are logged with pino at info to /dev/null (--log-dest: async8k, the default, is
 * asynchronous in 8 KiB writes as milter-process.ts logs them) unless --no-pino. Bounded by
 * N × R. Run it under
 * `node --cpu-prof` to see where the time goes.
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { MilterClient } from '../../adapters/milter/client.js';
import { milterNeeds, startMilter } from '../../adapters/milter/enforce.js';
import { MilterServer } from '../../adapters/milter/server.js';
import type { MilterHandler } from '../../adapters/milter/types.js';
import type { PolicyRequest } from '../../adapters/postfix-policy/codec.js';
import { answerRequest } from '../../adapters/postfix-policy/session.js';
import { Engine } from '../../engine/engine.js';
import { CAPTURES, INTERNET_IP, capturedRequests, northwindOnLoopback } from '../postfix-policy/helpers.js';

const PORT = 2525;

interface Job {
  readonly sockets: readonly string[];
  readonly count: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

const cpuUs = (): number => {
  const u = process.threadCpuUsage();
  return u.user + u.system;
};

/** One SMTP conversation as Postfix reports it to a milter. */
async function conversation(socket: string, i: number): Promise<void> {
  const c = await MilterClient.open(socket, { timeoutMs: 10_000 });
  try {
    await c.negotiate();
    const ip = INTERNET_IP;
    const expect = (r: { kind: string } | undefined, what: string, kind = 'continue'): void => {
      if (r !== undefined && r.kind !== kind) throw new Error(`conversation ${i}: ${what} answered ${r.kind}`);
    };
    expect(await c.connect(`[${ip}]`, 'inet', ip, 40000 + (i % 20000), { j: 'mx.northwind.test', _: `[${ip}]`, '{daemon_addr}': '127.0.0.1', '{daemon_port}': String(PORT), '{client_addr}': ip, '{client_port}': String(40000 + (i % 20000)) }), 'CONNECT');
    expect(await c.helo('client.example.net', {}), 'HELO');
    expect(await c.mail(['<bench@example.net>', 'SIZE=2048'], { '{mail_addr}': 'bench@example.net' }), 'MAIL');
    expect(await c.rcpt(['<nancy@northwind.test>'], { '{rcpt_addr}': 'nancy@northwind.test' }), 'RCPT');
    const headers = [
      ['From', 'Bench <bench@example.net>'],
      ['To', 'nancy@northwind.test'],
      ['Subject', `message ${i}`],
      ['Date', 'Tue, 01 Dec 2026 12:00:00 +0000'],
      ['Message-ID', `<${i}@example.net>`],
    ] as const;
    for (const [n, v] of headers) expect(await c.header(n, v, {}), 'HEADER');
    expect(await c.eoh({}), 'EOH');
    expect(await c.body('x'.repeat(1900) + '\r\n', {}), 'BODY');
    const r = await c.eom({});
    expect(r.verdict, 'EOM', 'accept');
    await c.quit();
  } finally {
    c.destroy();
  }
}

if (!isMainThread) {
  const job = workerData as Job;
  parentPort?.on('message', (which: number) => {
    void (async () => {
      const socket = job.sockets[which] as string;
      for (let i = 0; i < job.count; i++) await conversation(socket, i);
      parentPort?.postMessage('done');
    })().catch((e: unknown) => parentPort?.postMessage(e instanceof Error ? e.message : String(e)));
  });
} else {
  await main();
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { count: { type: 'string' }, rounds: { type: 'string' }, 'no-pino': { type: 'boolean' }, split: { type: 'boolean' }, 'log-dest': { type: 'string' } } });
  const mode = positionals[0];
  if (mode !== 'policy' && mode !== 'milter' && mode !== 'session') throw new Error('usage: adapter-cpu policy|milter|session [--count N] [--rounds R] [--no-pino]');
  const count = Number(values.count ?? (mode === 'milter' ? 500 : 5_000));
  const rounds = Number(values.rounds ?? 5);
  // --log-dest: async8k (default, as milter-process.ts), async (minLength 0) or sync.
  const kind = values['log-dest'] ?? 'async8k';
  const dest = pino.destination({ dest: '/dev/null', sync: kind === 'sync', ...(kind === 'async8k' ? { minLength: 8_192 } : {}) });
  const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silent };
  const logger = values['no-pino'] === true ? silent : pino({ level: 'info' }, dest);
  const engine = await Engine.create({ config: northwindOnLoopback({ smtp: [PORT], submission: [2587] }), logger });
  const rows: string[] = [];
  if (mode === 'policy') {
    const rcpts = CAPTURES.flatMap((c) => capturedRequests(c).filter((r) => r.get('protocol_state') === 'RCPT'));
    const scanner = rcpts[0] as PolicyRequest;
    const requests: PolicyRequest[] = [...rcpts, new Map([...scanner, ['client_address', INTERNET_IP]])];
    const per: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const t0 = cpuUs();
      for (let i = 0; i < count; i++) {
        const a = await answerRequest(engine, requests[i % requests.length] as PolicyRequest);
        if (a.error !== undefined) throw new Error(`request ${i}: ${a.error.message}`);
      }
      if (r > 0) per.push((cpuUs() - t0) / count); // round 0 warms up
    }
    rows.push(`| answerRequest | ${count} × ${rounds} | ${median(per).toFixed(1)} | ${Math.min(...per).toFixed(1)} |`);
  } else if (mode === 'session') {
    const headers: [string, string][] = [['From', 'Bench <bench@example.net>'], ['To', 'nancy@northwind.test'], ['Subject', 'message'], ['Date', 'Tue, 01 Dec 2026 12:00:00 +0000'], ['Message-ID', '<1@example.net>']];
    const per: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const t0 = cpuUs();
      for (let i = 0; i < count; i++) {
        const s = engine.session({ local: `127.0.0.1:${PORT}`, remote: INTERNET_IP }, { logBindings: { adapter: 'milter', conn: i, smtp: 1 } });
        const ds = [await s.connect(), await s.helo('client.example.net'), await s.mail('<bench@example.net>', { SIZE: '2048' }), await s.rcpt('<nancy@northwind.test>'), await s.headers(headers, 200), await s.eom(2100)];
        await s.messageAccepted();
        await s.close();
        const last = ds[ds.length - 1];
        if (last?.decision !== 'accept') throw new Error(`conversation ${i}: ${last?.stage} ${last?.decision} ${last?.reason}`);
      }
      if (r > 0) per.push((cpuUs() - t0) / count);
    }
    rows.push(`| Session conversation | ${count} × ${rounds} | ${median(per).toFixed(1)} | ${Math.min(...per).toFixed(1)} |`);
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'adapter-cpu-'));
    const nothing: MilterHandler = {
      connect: () => ({ kind: 'continue' }), helo: () => ({ kind: 'continue' }), mail: () => ({ kind: 'continue' }), rcpt: () => ({ kind: 'continue' }),
      data: () => ({ kind: 'continue' }), header: () => ({ kind: 'continue' }), eoh: () => ({ kind: 'continue' }), body: () => ({ kind: 'continue' }),
      eom: () => ({ action: { kind: 'accept' } }), abort: () => undefined, close: () => undefined,
    };
    // --split: time spent inside engine.session() and the Session's methods, measured around each
    // call (wall clock: the thread CPU clock only advances at scheduler ticks).
    const inEngine = { us: 0 };
    const wallUs = (): number => performance.now() * 1000;
    const timed = <T>(f: () => T): T => {
      const t0 = wallUs();
      const r = f();
      if (r instanceof Promise) return r.finally(() => (inEngine.us += wallUs() - t0)) as T;
      inEngine.us += wallUs() - t0;
      return r;
    };
    const splitEngine = {
      limits: engine.limits,
      session: (...a: Parameters<Engine['session']>) => {
        const s = timed(() => engine.session(...a));
        return new Proxy(s, { get: (t, k) => { const v = Reflect.get(t, k, t) as unknown; return typeof v === 'function' ? (...args: unknown[]) => timed(() => (v as (...x: unknown[]) => unknown).apply(t, args)) : v; } });
      },
    };
    const servers = [
      await startMilter(values.split === true ? splitEngine : engine, { listen: `unix:${join(dir, 'engine.sock')}`, logger }),
      await MilterServer.start({ listen: `unix:${join(dir, 'nothing.sock')}`, logger, createHandler: () => nothing, needs: milterNeeds() }),
    ];
    const worker = new Worker(new URL(import.meta.url), { workerData: { sockets: servers.map((s) => `unix:${(s.address as { path: string }).path}`), count } satisfies Job });
    const per: number[][] = [[], []];
    const split: number[] = [];
    try {
      for (let r = 0; r <= rounds; r++) {
        for (const which of [0, 1]) {
          const t0 = cpuUs();
          worker.postMessage(which);
          const [msg] = (await once(worker, 'message')) as [string];
          if (msg !== 'done') throw new Error(msg);
          if (r > 0) per[which]?.push((cpuUs() - t0) / count);
          if (r > 0 && which === 0 && values.split === true) split.push(inEngine.us / count);
          inEngine.us = 0;
        }
      }
    } finally {
      await worker.terminate();
      for (const s of servers) await s.close(1_000);
      await rm(dir, { recursive: true, force: true });
    }
    rows.push(`| enforcing milter | ${count} × ${rounds} | ${median(per[0] ?? []).toFixed(1)} | ${Math.min(...(per[0] ?? [])).toFixed(1)} |`);
    if (values.split === true) rows.push(`| of which in engine.session() and Session calls (wall) | | ${median(split).toFixed(1)} | ${Math.min(...split).toFixed(1)} |`);
    rows.push(`| do-nothing handler | ${count} × ${rounds} | ${median(per[1] ?? []).toFixed(1)} | ${Math.min(...(per[1] ?? [])).toFixed(1)} |`);
  }
  console.log(`${mode}: CPU of the adapter's thread (logger: ${values['no-pino'] === true ? 'none' : `pino info → /dev/null (${kind})`}; node ${process.version}; ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')})\n`);
  console.log(`| what | count | median µs per ${mode === 'policy' ? 'request' : 'conversation'} | min |\n|---|---|---|---|`);
  console.log(rows.join('\n'));
  dest.flushSync();
}
