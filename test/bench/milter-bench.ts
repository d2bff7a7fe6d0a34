/**
 * npm run bench:milter — what putting mta-policy in front of Postfix costs, all in one run:
 *
 * 1. Throughput and latency. One private Postfix 3.7 (delivery to `discard`, so the queue and
 *    delivery cost the same for every setup) with one smtpd listener per setup:
 *      none          no milter
 *      c-inet/unix   the C libmilter pass-through (passthrough-milter.c: CONTINUE to every
 *                    event, no actions, no NR/skip), over TCP and over a unix socket
 *      mtap-inet/unix mta-policy enforcing examples/northwind.yaml (its Internet connector bound
 *                    to these listeners) as an admin deploys it: docs/mta-integration.md's
 *                    main.cf entire, the milter AND the policy service (check_policy_service in
 *                    smtpd_relay_restrictions, asked at every RCPT), both served by one process
 *                    of its own (milter-process.ts, as `serve` runs them), logging every decision
 *                    at info to a file; milter and policy service over TCP, or both over unix sockets
 *    The other settings are the documented main.cf too (docPostfixMainAt); the baselines run its
 *    relay restrictions without the policy service — the admin's Postfix before mta-policy.
 *    Two settings differ, for the client: smtp-source connects from 127.0.0.1 and cannot choose
 *    its source address, which the snippet's `mynetworks` (this host) would pass before the
 *    policy service is asked, so mynetworks is 192.0.2.0/24; and relay_domains names the
 *    recipients' domain, so that the baselines' reject_unauth_destination passes them.
 *    `smtp-source` on loopback drives each listener, setups interleaved round by round so that
 *    drift in the machine's speed hits all alike:
 *      throughput  -s SESSIONS parallel sessions, MESSAGES messages: messages/s (median of ROUNDS)
 *      latency     -s 1, one SMTP connection per message, LATENCY_MESSAGES messages: ms/message
 *                  (median of ROUNDS); "added" is that minus the no-milter figure
 *    smtp-source exits non-zero on any reply it did not expect, so every message counted was
 *    accepted by each milter — for mta-policy, after every policy stage and its header edits.
 *    The policy server's time per request is measured in the mta-policy process (milter-process.ts:
 *    engine session opened → decided, the last 100,000 requests of each run) and read after each
 *    run; its request count must equal the messages sent (one RCPT each), or the run fails.
 * 2. Memory: RSS of a fresh mta-policy milter process (not the one the runs above filled with
 *    garbage not yet collected), idle and with CONCURRENT milter connections open at once, each
 *    an SMTP session in the middle of a message (negotiated, connected, HELO, MAIL, RCPT,
 *    headers sent), driven by the in-repo MTA-side client with distinct client addresses.
 *
 * Bounded: fixed counts, every smtp-source run killed after 120 s. Options: --quick (fewer
 * messages and rounds), --memory (only part 2), --json FILE.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MilterClient } from '../../adapters/milter/client.js';
import { PeerStack, makeRunDir, peerMissing, smtpSource, startPostfix, type PostfixInstance } from '../peers/harness.js';
import { removeRunDir } from '../peers/proc.js';
import { NORTHWIND, northwindText } from './milter-config.js';
import { spawnMilterProcess, type MilterProcess, type PolicyStats } from './milter-process.js';
import { docPostfixMainAt, docRelayRestrictionsAt, restrictionList } from './mta-integration-doc.js';
import { startPassthroughMilter } from './peers/passthrough-milter.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' }, memory: { type: 'boolean' }, json: { type: 'string' } } });
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

/** The mta-policy process serving each mta-policy setup (its policy server's timings are read per run). */
const serving: Partial<Record<Setup, MilterProcess>> = {};

/** One smtp-source run: its duration, and for an mta-policy setup the policy server's timings over it. */
async function drive(pf: PostfixInstance, setup: Setup, opts: { sessions: number; messages: number }): Promise<{ ms: number; policy: PolicyStats | undefined }> {
  const r = await smtpSource({
    target: `127.0.0.1:${pf.ports[setup]}`, sessions: opts.sessions, messages: opts.messages, size: SIZE,
    from: 'bench@example.net', to: 'nancy@northwind.test', helo: 'bench.example.net', timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`smtp-source on ${setup} failed (${r.code ?? r.signal}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  const policy = await serving[setup]?.policyStats();
  if (policy !== undefined && policy.requests !== opts.messages) throw new Error(`${setup}: the policy server answered ${policy.requests} requests for ${opts.messages} messages (one RCPT each)`);
  return { ms: r.durationMs, policy };
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
    const policySocket = join(dir, 'mta-policy-policy.sock');
    // The TCP ports are chosen by the OS when the process starts; Postfix learns them below.
    const documented = docPostfixMainAt({ milter: '$mta_policy_inet', policy: '$mta_policy_policy_inet' });
    const before = restrictionList(documented['smtpd_relay_restrictions'] ?? '').filter((r) => !r.startsWith('check_policy_service ')).join(', ');
    const services: Record<Setup, Record<string, string>> = {
      none: { smtpd_milters: '', smtpd_relay_restrictions: before },
      'c-inet': { smtpd_milters: cInet.postfixSpec, smtpd_relay_restrictions: before },
      'c-unix': { smtpd_milters: cUnix.postfixSpec, smtpd_relay_restrictions: before },
      'mtap-inet': { smtpd_milters: '$mta_policy_inet', smtpd_relay_restrictions: documented['smtpd_relay_restrictions'] ?? '' },
      'mtap-unix': { smtpd_milters: `unix:${socket}`, smtpd_relay_restrictions: docRelayRestrictionsAt(`unix:${policySocket}`) },
    };
    const pf = peers.add(await startPostfix({
      main: {
        ...documented, smtpd_milters: '', smtpd_relay_restrictions: before, mynetworks: '192.0.2.0/24', relay_domains: 'northwind.test',
        mta_policy_inet: 'inet:127.0.0.1:9', mta_policy_policy_inet: 'inet:127.0.0.1:9', default_process_limit: '200',
      },
      services,
    }));
    const ports = SETUPS.map((s) => `127.0.0.1:${pf.ports[s]}`);
    const config = join(dir, 'mta-policy.yaml');
    await writeFile(config, northwindText({ [NORTHWIND.internet]: { bindings: ports } }));
    const mtapInet = peers.add(wrap(await spawnMilterProcess({ config, listen: 'inet:0@127.0.0.1', policyListen: 'inet:0@127.0.0.1', log: join(dir, 'inet.log') }))).p;
    const mtapUnix = peers.add(wrap(await spawnMilterProcess({ config, listen: `unix:${socket}`, policyListen: `unix:${policySocket}`, log: join(dir, 'unix.log'), socketMode: 0o666 }))).p;
    serving['mtap-inet'] = mtapInet;
    serving['mtap-unix'] = mtapUnix;
    const portOf = (listen: string | undefined): string | undefined => /^inet:(\d+)@/.exec(listen ?? '')?.[1];
    await pf.postconf(['-e', `mta_policy_inet = inet:127.0.0.1:${portOf(mtapInet.listen)}`, `mta_policy_policy_inet = inet:127.0.0.1:${portOf(mtapInet.policyListen)}`], true);
    await new Promise((r) => setTimeout(r, 1_500)); // postfix reload: new smtpd processes read it

    let rows: Record<string, unknown>[] = [];
    if (args.memory !== true) rows = await throughput(pf);
    const fresh = peers.add(wrap(await spawnMilterProcess({ config, listen: `unix:${join(dir, 'memory.sock')}`, log: join(dir, 'memory.log') })));
    await new Promise((r) => setTimeout(r, 1_000));
    const mem = await memory(fresh.p, pf.ports['mtap-unix'] ?? 0);
    console.log('');
    console.log(`mta-policy milter process RSS (fresh process): ${fmt(mem.idleKb / 1024)} MB idle, ${fmt(mem.openKb / 1024)} MB with ${mem.open} milter connections open mid-message, ${fmt(mem.afterKb / 1024)} MB after they closed`);
    if (args.json !== undefined) await writeFile(args.json, JSON.stringify({ sessions: SESSIONS, messages: MESSAGES, latencyMessages: LATENCY_MESSAGES, rounds: ROUNDS, rows, memory: mem }, null, 2));
  } finally {
    await peers.stopAll();
  }
}

/** Part 1: the table. */
async function throughput(pf: PostfixInstance): Promise<Record<string, unknown>[]> {
  console.log('# mta-policy milter benchmark');
  console.log(`node ${process.version}; Postfix → discard; smtp-source on loopback, ${SIZE}-byte messages; median of ${ROUNDS} round(s), setups interleaved`);
  for (const s of SETUPS) await drive(pf, s, { sessions: 5, messages: QUICK ? 50 : 200 }); // warm-up (JIT, Postfix processes)
  const tput: Record<Setup, number[]> = { none: [], 'c-inet': [], 'c-unix': [], 'mtap-inet': [], 'mtap-unix': [] };
  const lat: Record<Setup, number[]> = { none: [], 'c-inet': [], 'c-unix': [], 'mtap-inet': [], 'mtap-unix': [] };
  const POLICY_SETUPS = ['mtap-inet', 'mtap-unix'] as const;
  const pol: Record<(typeof POLICY_SETUPS)[number], { tput: PolicyStats[]; lat: PolicyStats[] }> = { 'mtap-inet': { tput: [], lat: [] }, 'mtap-unix': { tput: [], lat: [] } };
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of SETUPS) {
      const r = await drive(pf, s, { sessions: SESSIONS, messages: MESSAGES });
      tput[s].push((MESSAGES * 1000) / r.ms);
      if (r.policy !== undefined && (s === 'mtap-inet' || s === 'mtap-unix')) pol[s].tput.push(r.policy);
    }
    for (const s of SETUPS) {
      const r = await drive(pf, s, { sessions: 1, messages: LATENCY_MESSAGES });
      lat[s].push(r.ms / LATENCY_MESSAGES);
      if (r.policy !== undefined && (s === 'mtap-inet' || s === 'mtap-unix')) pol[s].lat.push(r.policy);
    }
  }
  const mps = (s: Setup): number => median(tput[s]);
  const ms = (s: Setup): number => median(lat[s]);
  console.log('');
  console.log(`| setup | messages/s (${SESSIONS} sessions, ${MESSAGES} msgs) | ÷ no milter | ÷ C pass-through, same transport | ms/message (1 session) | added ms/message |`);
  console.log('|---|---:|---:|---:|---:|---:|');
  const label: Record<Setup, string> = {
    none: 'Postfix, no milter', 'c-inet': 'C pass-through, TCP', 'c-unix': 'C pass-through, unix socket',
    'mtap-inet': 'mta-policy (northwind.yaml, milter + policy service), TCP', 'mtap-unix': 'mta-policy (northwind.yaml, milter + policy service), unix sockets',
  };
  const rows: Record<string, unknown>[] = [];
  for (const s of SETUPS) {
    const c: Setup | undefined = s === 'mtap-inet' ? 'c-inet' : s === 'mtap-unix' ? 'c-unix' : undefined;
    const vsC = c === undefined ? '' : `${fmt(mps(s) / mps(c), 2)}×`;
    const added = s === 'none' ? '' : fmt(ms(s) - ms('none'), 2);
    console.log(`| ${label[s]} | ${fmt(mps(s), 0)} | ${fmt(mps(s) / mps('none'), 2)}× | ${vsC} | ${fmt(ms(s), 2)} | ${added} |`);
    rows.push({ setup: s, messagesPerSecond: tput[s], msPerMessage: lat[s], ...(s === 'mtap-inet' || s === 'mtap-unix' ? { policy: pol[s] } : {}) });
  }
  // The policy service in the same runs: its share of what mta-policy adds per message.
  console.log('');
  console.log('Policy service (check_policy_service, one request per message) in the same runs, timed in the mta-policy process (session opened → decided; median over rounds):');
  console.log('');
  console.log('| setup | run | requests | mean µs/request | p50 µs | p99 µs | max µs | mean ÷ added ms/message (1 session) |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  const med = (xs: readonly PolicyStats[], k: keyof PolicyStats): number => median(xs.map((x) => x[k]));
  for (const s of POLICY_SETUPS) {
    const added = (ms(s) - ms('none')) * 1000;
    for (const [run, xs] of [[`${SESSIONS} sessions`, pol[s].tput], ['1 session', pol[s].lat]] as const) {
      const share = run === '1 session' && added > 0 ? `${fmt((100 * med(xs, 'meanUs')) / added, 1)} %` : '';
      console.log(`| ${label[s]} | ${run} | ${xs.reduce((a, x) => a + x.requests, 0)} | ${fmt(med(xs, 'meanUs'), 0)} | ${fmt(med(xs, 'p50Us'), 0)} | ${fmt(med(xs, 'p99Us'), 0)} | ${fmt(med(xs, 'maxUs'), 0)} | ${share} |`);
    }
  }
  return rows;
}

/** A milter process as a PeerStack entry (stopped gracefully with the rest). */
function wrap(p: MilterProcess): { p: MilterProcess; stop(): Promise<void> } {
  return { p, stop: () => p.stop() };
}

main().catch((e: unknown) => {
  console.error(`bench:milter: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
