/**
 * npm run bench:milter — what putting mta-policy in front of Postfix costs, all in one run:
 *
 * 1. Throughput and latency. One private Postfix 3.7 (delivery to `discard`, so the queue and
 *    delivery cost the same for every setup) with one smtpd listener per setup:
 *      none          no milter
 *      c-inet/unix   the C libmilter pass-through (passthrough-milter.c: CONTINUE to every
 *                    event, no actions, no NR/skip), over TCP and over a unix socket
 *      mtap-inet/unix mta-policy enforcing examples/northwind.yaml (its Internet connector bound
 *                    to these listeners) in a process of its own (milter-process.ts), logging
 *                    every decision at info to a file, over TCP and over a unix socket
 *    Postfix's milter settings are the documented ones (POSTFIX_MILTER_MAIN). `smtp-source` on
 *    loopback drives each listener, setups interleaved round by round so that drift in the
 *    machine's speed hits all alike:
 *      throughput  -s SESSIONS parallel sessions, MESSAGES messages: messages/s (median of ROUNDS)
 *      latency     -s 1, one SMTP connection per message, LATENCY_MESSAGES messages: ms/message
 *                  (median of ROUNDS); "added" is that minus the no-milter figure
 *    smtp-source exits non-zero on any reply it did not expect, so every message counted was
 *    accepted by each milter — for mta-policy, after every policy stage and its header edits.
 * 2. Memory: RSS of the mta-policy milter process with CONCURRENT milter connections open at
 *    once, each an SMTP session in the middle of a message (negotiated, connected, HELO, MAIL,
 *    RCPT, headers sent), driven by the in-repo MTA-side client with distinct client addresses.
 *
 * Bounded: fixed counts, every smtp-source run killed after 120 s. Options: --quick (fewer
 * messages and rounds), --json FILE.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MilterClient } from '../../adapters/milter/client.js';
import { PeerStack, makeRunDir, peerMissing, smtpSource, startPostfix, type PostfixInstance } from '../peers/harness.js';
import { removeRunDir } from '../peers/proc.js';
import { NORTHWIND, POSTFIX_MILTER_MAIN, northwindText } from './milter-config.js';
import { spawnMilterProcess, type MilterProcess } from './milter-process.js';
import { startPassthroughMilter } from './peers/passthrough-milter.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' }, json: { type: 'string' } } });
const QUICK = args.quick === true;
const SESSIONS = 10;
const MESSAGES = QUICK ? 300 : 2000;
const LATENCY_MESSAGES = QUICK ? 50 : 200;
const ROUNDS = QUICK ? 1 : 3;
const CONCURRENT = 500;
const SIZE = 2048;
const SETUPS = ['none', 'c-inet', 'c-unix', 'mtap-inet', 'mtap-unix'] as const;
type Setup = (typeof SETUPS)[number];

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const fmt = (x: number, d = 1): string => x.toFixed(d);

async function drive(pf: PostfixInstance, setup: Setup, opts: { sessions: number; messages: number }): Promise<number> {
  const r = await smtpSource({
    target: `127.0.0.1:${pf.ports[setup]}`, sessions: opts.sessions, messages: opts.messages, size: SIZE,
    from: 'bench@example.net', to: 'nancy@northwind.test', helo: 'bench.example.net', timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`smtp-source on ${setup} failed (${r.code ?? r.signal}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return r.durationMs;
}

/** CONCURRENT milter connections held mid-message; RSS (kB) before, with them open, and after. */
async function memory(mp: MilterProcess, postfixPort: number): Promise<{ idleKb: number; openKb: number; afterKb: number; open: number }> {
  const idleKb = await mp.rssKb();
  const clients: MilterClient[] = [];
  try {
    for (let i = 0; i < CONCURRENT; i++) {
      const c = await MilterClient.open(mp.listen, { timeoutMs: 30_000 });
      clients.push(c);
      await c.negotiate();
      const ip = `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
      const ok = (r: { kind: string } | undefined, what: string): void => {
        if (r !== undefined && r.kind !== 'continue') throw new Error(`connection ${i}: ${what} answered ${r.kind}`);
      };
      ok(await c.connect(`[${ip}]`, 'inet', ip, 40000 + i, { j: 'mx.postfix.test', '{daemon_addr}': '127.0.0.1', '{daemon_port}': String(postfixPort), '{client_addr}': ip }), 'CONNECT');
      ok(await c.helo(`client${i}.example.net`, {}), 'HELO');
      ok(await c.mail(['<bench@example.net>', `SIZE=${SIZE}`], {}), 'MAIL');
      ok(await c.rcpt(['<nancy@northwind.test>'], {}), 'RCPT');
      for (const [n, v] of [['From', 'bench@example.net'], ['To', 'nancy@northwind.test'], ['Subject', `held ${i}`]] as const) ok(await c.header(n, v, {}), 'HEADER');
    }
    const openKb = await mp.rssKb();
    for (const c of clients) {
      await c.eoh({});
      await c.body('x\r\n', {});
      const r = await c.eom({});
      if (r.verdict.kind !== 'accept') throw new Error(`a held message ended with ${r.verdict.kind}`);
      c.abort();
    }
    await Promise.all(clients.splice(0).map((c) => c.quit()));
    await new Promise((r) => setTimeout(r, 500));
    return { idleKb, openKb, afterKb: await mp.rssKb(), open: CONCURRENT };
  } finally {
    for (const c of clients) c.destroy();
  }
}

async function main(): Promise<void> {
  for (const p of ['postfix', 'smtp-tools', 'passthrough-milter'] as const) {
    const missing = peerMissing(p);
    if (missing !== null) throw new Error(`bench:milter needs ${p}: ${missing} (bash scripts/peers/install.sh)`);
  }
  const peers = new PeerStack();
  try {
    const dir = await makeRunDir('milter-bench');
    peers.add({ stop: async () => removeRunDir(dir) });
    const cInet = peers.add(await startPassthroughMilter({ transport: 'inet' }));
    const cUnix = peers.add(await startPassthroughMilter({ transport: 'unix' }));
    const socket = join(dir, 'mta-policy.sock');
    const mtapInetPort = 0; // chosen by the OS when the process starts; Postfix learns it below
    const services: Record<Setup, Record<string, string>> = {
      none: { smtpd_milters: '' },
      'c-inet': { smtpd_milters: cInet.postfixSpec },
      'c-unix': { smtpd_milters: cUnix.postfixSpec },
      'mtap-inet': { smtpd_milters: '$mta_policy_inet' },
      'mtap-unix': { smtpd_milters: `unix:${socket}` },
    };
    const pf = peers.add(await startPostfix({
      main: { ...POSTFIX_MILTER_MAIN, smtpd_milters: '', mta_policy_inet: 'inet:127.0.0.1:9', default_process_limit: '200' },
      services,
    }));
    const ports = SETUPS.map((s) => `127.0.0.1:${pf.ports[s]}`);
    const config = join(dir, 'mta-policy.yaml');
    await writeFile(config, northwindText({ [NORTHWIND.internet]: { bindings: ports } }));
    const mtapInet = peers.add(wrap(await spawnMilterProcess({ config, listen: `inet:${mtapInetPort}@127.0.0.1`, log: join(dir, 'inet.log') })));
    const mtapUnix = peers.add(wrap(await spawnMilterProcess({ config, listen: `unix:${socket}`, log: join(dir, 'unix.log'), socketMode: 0o666 })));
    const inetPort = /^inet:(\d+)@/.exec(mtapInet.p.listen)?.[1];
    await pf.postconf(['-e', `mta_policy_inet = inet:127.0.0.1:${inetPort}`], true);
    await new Promise((r) => setTimeout(r, 1_500)); // postfix reload: new smtpd processes read it

    console.log('# mta-policy milter benchmark');
    console.log(`node ${process.version}; Postfix → discard; smtp-source on loopback, ${SIZE}-byte messages; median of ${ROUNDS} round(s), setups interleaved`);
    for (const s of SETUPS) await drive(pf, s, { sessions: 5, messages: QUICK ? 50 : 200 }); // warm-up (JIT, Postfix processes)
    const tput: Record<Setup, number[]> = { none: [], 'c-inet': [], 'c-unix': [], 'mtap-inet': [], 'mtap-unix': [] };
    const lat: Record<Setup, number[]> = { none: [], 'c-inet': [], 'c-unix': [], 'mtap-inet': [], 'mtap-unix': [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of SETUPS) tput[s].push((MESSAGES * 1000) / (await drive(pf, s, { sessions: SESSIONS, messages: MESSAGES })));
      for (const s of SETUPS) lat[s].push((await drive(pf, s, { sessions: 1, messages: LATENCY_MESSAGES })) / LATENCY_MESSAGES);
    }
    const mps = (s: Setup): number => median(tput[s]);
    const ms = (s: Setup): number => median(lat[s]);
    console.log('');
    console.log(`| setup | messages/s (${SESSIONS} sessions, ${MESSAGES} msgs) | ÷ no milter | ÷ C pass-through, same transport | ms/message (1 session) | added ms/message |`);
    console.log('|---|---:|---:|---:|---:|---:|');
    const label: Record<Setup, string> = {
      none: 'Postfix, no milter', 'c-inet': 'C pass-through, TCP', 'c-unix': 'C pass-through, unix socket',
      'mtap-inet': 'mta-policy (northwind.yaml), TCP', 'mtap-unix': 'mta-policy (northwind.yaml), unix socket',
    };
    const rows: Record<string, unknown>[] = [];
    for (const s of SETUPS) {
      const c: Setup | undefined = s === 'mtap-inet' ? 'c-inet' : s === 'mtap-unix' ? 'c-unix' : undefined;
      const vsC = c === undefined ? '' : `${fmt(mps(s) / mps(c), 2)}×`;
      const added = s === 'none' ? '' : fmt(ms(s) - ms('none'), 2);
      console.log(`| ${label[s]} | ${fmt(mps(s), 0)} | ${fmt(mps(s) / mps('none'), 2)}× | ${vsC} | ${fmt(ms(s), 2)} | ${added} |`);
      rows.push({ setup: s, messagesPerSecond: tput[s], msPerMessage: lat[s] });
    }
    const mem = await memory(mtapInet.p, pf.ports['mtap-inet'] ?? 0);
    console.log('');
    console.log(`mta-policy milter process RSS: ${fmt(mem.idleKb / 1024)} MB idle (after the runs above), ${fmt(mem.openKb / 1024)} MB with ${mem.open} milter connections open mid-message, ${fmt(mem.afterKb / 1024)} MB after they closed`);
    if (args.json !== undefined) await writeFile(args.json, JSON.stringify({ sessions: SESSIONS, messages: MESSAGES, latencyMessages: LATENCY_MESSAGES, rounds: ROUNDS, rows, memory: mem }, null, 2));
  } finally {
    await peers.stopAll();
  }
}

/** A milter process as a PeerStack entry (stopped gracefully with the rest). */
function wrap(p: MilterProcess): { p: MilterProcess; stop(): Promise<void> } {
  return { p, stop: () => p.stop() };
}

main().catch((e: unknown) => {
  console.error(`bench:milter: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
