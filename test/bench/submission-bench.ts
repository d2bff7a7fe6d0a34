/**
 * npm run bench:submission — the submission listener against Postfix's own submission service
 * on this machine, in one run, with the same load generator and the same next hop (smtp-sink):
 *
 * 1. STARTTLS + AUTH PLAIN + one message per connection, 20 concurrent clients;
 * 2. STARTTLS + AUTH PLAIN + 100 messages per connection, 20 concurrent clients;
 * 3. RSS of the listener process at 1,000 concurrent idle connections.
 *
 * Both servers verify the same SHA512-CRYPT hash made by `doveadm pw`: the listener from its
 * configuration, Postfix through a private Dovecot (smtpd_sasl_type = dovecot); both remember a
 * successful login for 60 s (the listener's success cache, Dovecot's auth_cache). Postfix answers
 * 250 once its queue file is fsynced; the listener once smtp-sink answered 250 (proxy mode).
 * The listener runs in a child process so its RSS is its own. The load generator is nodemailer's
 * SMTPConnection (none of the bulk tools does TLS and AUTH); it shares the CPUs with the server.
 *
 * Bounded: fixed message counts. Options: --quick (a tenth of the load), --json FILE.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { dovecotHash, PeerStack, smtpSink, startDovecot, startPostfix } from '../peers/harness.js';
import { message, startListener, USERS } from '../submission/listener-fixture.js';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const JSON_OUT = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
const CONCURRENCY = 20;
const IDLE_CONNECTIONS = 1000;

interface ChildReady { readonly kind: 'ready'; readonly port: number }
interface ChildRss { readonly kind: 'rss'; readonly rss: number }

/** The child: the listener on a config whose next hop is the given smtp-sink port. */
async function child(sinkPort: number, hash: string): Promise<void> {
  const unlimited = 'message_rate_limit: unlimited, max_inbound_connection: unlimited, max_inbound_connection_per_source: unlimited';
  const fx = await startListener({ nextHop: `smtp://127.0.0.1:${sinkPort}`, client: unlimited, hashes: { nancy: hash }, listener: { maxConnections: IDLE_CONNECTIONS + 100, nextHop: { tls: { starttls: 'never' } } } });
  process.on('message', (m: { kind: string }) => {
    if (m.kind === 'rss') process.send?.({ kind: 'rss', rss: process.memoryUsage().rss } satisfies ChildRss);
    if (m.kind === 'stop') void fx.stop().then(() => process.exit(0));
  });
  process.send?.({ kind: 'ready', port: fx.ports.client } satisfies ChildReady);
}

function ask<T>(p: ChildProcess, kind: string, reply: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { kind: string }): void => {
      if (m.kind !== reply) return;
      p.off('message', on);
      resolve(m as T);
    };
    p.on('message', on);
    if (kind !== '') p.send({ kind });
  });
}

type Client = InstanceType<typeof SMTPConnection>;
const cb = <T>(f: (done: (e?: Error | null, v?: T) => void) => void): Promise<T> => new Promise((res, rej) => f((e, v) => (e ? rej(e) : res(v as T))));

/** One client session: connect, STARTTLS, AUTH PLAIN, `n` messages, QUIT. Returns the messages acknowledged. */
async function session(port: number, n: number, tag: string): Promise<number> {
  const c: Client = new SMTPConnection({ host: '127.0.0.1', port, requireTLS: true, name: 'load.test', tls: { rejectUnauthorized: false }, socketTimeout: 60_000 });
  c.on('error', () => undefined);
  await cb<void>((d) => c.connect(() => d()));
  await cb<unknown>((d) => c.login({ user: 'nancy', pass: USERS.nancy, method: 'PLAIN' } as never, (e) => d(e)));
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const id = `${tag}-${i}@bench.test`;
    await cb((d) => c.send({ from: 'nancy@example.test', to: ['bob@example.test'] }, message({ from: 'nancy@example.test', to: 'bob@example.test', id, body: `${'x'.repeat(78)}\r\n`.repeat(25) }), d));
    ok++;
  }
  c.quit();
  return ok;
}

/** `connections` sessions of `perConnection` messages, `CONCURRENCY` at a time. */
async function load(port: number, connections: number, perConnection: number): Promise<{ messages: number; seconds: number; rate: number; errors: number }> {
  let next = 0;
  let messages = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < connections) {
      const k = next++;
      try {
        const done = await session(port, perConnection, `c${k}`); // not `messages += await …`: that reads `messages` before the await
        messages += done;
      } catch (e) {
        if (errors++ === 0) console.error(`first error (port ${port}): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { messages, seconds: Number(seconds.toFixed(2)), rate: Number((messages / seconds).toFixed(1)), errors };
}

async function idle(port: number, count: number): Promise<net.Socket[]> {
  const out: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const s = net.connect({ port, host: '127.0.0.1' });
    await new Promise<void>((res, rej) => {
      s.once('data', () => res());
      s.once('error', rej);
    });
    out.push(s);
  }
  return out;
}

async function main(): Promise<void> {
  const peers = new PeerStack();
  try {
    const sink = peers.add(await smtpSink({ capture: false, backlog: 1024 }));
    const hash = await dovecotHash(USERS.nancy, 'SHA512-CRYPT');
    // Dovecot's auth cache on, as the listener's success cache is (credentials.ts): both skip the hash on a repeat login.
    const dv = peers.add(await startDovecot({ users: [{ name: 'nancy', hash }], lmtp: false, extraConf: 'auth_cache_size = 10M\nauth_cache_ttl = 60 s' }));
    const pf = peers.add(await startPostfix({
      tls: true,
      dovecotSasl: dv.authSocket,
      delivery: { kind: 'relay', port: sink.port },
      main: { smtpd_tls_session_cache_database: '', default_process_limit: '100' },
      services: {
        submission: {
          smtpd_tls_security_level: 'encrypt', smtpd_sasl_auth_enable: 'yes', smtpd_tls_auth_only: 'yes',
          smtpd_client_restrictions: 'permit_sasl_authenticated,reject', smtpd_recipient_restrictions: 'permit_sasl_authenticated,reject',
        },
      },
    }));
    const pfPort = pf.ports['submission'] ?? 0;
    const me = fork(fileURLToPath(import.meta.url), ['--child', String(sink.port), hash], { stdio: 'inherit' });
    peers.add({ stop: async () => { me.send({ kind: 'stop' }); await new Promise((r) => me.once('exit', r)); } });
    const { port } = await ask<ChildReady>(me, '', 'ready');
    const fresh = Math.round((await ask<ChildRss>(me, 'rss', 'rss')).rss / 2 ** 20);
    const scale = QUICK ? 0.1 : 1;
    const oneConns = Math.round(400 * scale);
    const manyConns = Math.max(CONCURRENCY, Math.round(40 * scale));
    const per = QUICK ? 20 : 100;
    // Warm-up (TLS session setup, JIT): not counted.
    await load(port, CONCURRENCY, 2);
    await load(pfPort, CONCURRENCY, 2);
    const results = {
      one_per_connection: { listener: await load(port, oneConns, 1), postfix: await load(pfPort, oneConns, 1) },
      many_per_connection: { listener: await load(port, manyConns, per), postfix: await load(pfPort, manyConns, per) },
      rss: { idle_connections: IDLE_CONNECTIONS, fresh_mb: fresh, before_mb: 0, at_idle_mb: 0 },
    };
    results.rss.before_mb = Math.round((await ask<ChildRss>(me, 'rss', 'rss')).rss / 2 ** 20);
    const sockets = await idle(port, IDLE_CONNECTIONS);
    results.rss.at_idle_mb = Math.round((await ask<ChildRss>(me, 'rss', 'rss')).rss / 2 ** 20);
    for (const s of sockets) s.destroy();
    const ratio = (k: 'one_per_connection' | 'many_per_connection'): number => Number((results[k].listener.rate / results[k].postfix.rate).toFixed(2));
    const summary = { ...results, ratio: { one_per_connection: ratio('one_per_connection'), many_per_connection: ratio('many_per_connection') }, concurrency: CONCURRENCY, quick: QUICK };
    console.log(JSON.stringify(summary, null, 2));
    console.log(`STARTTLS+AUTH, 1 msg/conn, ${CONCURRENCY} concurrent: listener ${results.one_per_connection.listener.rate} msg/s, Postfix ${results.one_per_connection.postfix.rate} msg/s (×${summary.ratio.one_per_connection})`);
    console.log(`STARTTLS+AUTH, ${per} msg/conn, ${CONCURRENCY} concurrent: listener ${results.many_per_connection.listener.rate} msg/s, Postfix ${results.many_per_connection.postfix.rate} msg/s (×${summary.ratio.many_per_connection})`);
    console.log(`listener RSS: ${results.rss.fresh_mb} MB at start, ${results.rss.before_mb} MB after the loads, ${results.rss.at_idle_mb} MB with ${IDLE_CONNECTIONS} idle connections`);
    if (JSON_OUT !== undefined) await writeFile(JSON_OUT, JSON.stringify(summary, null, 2));
    if (argv.includes('--debug')) console.log(pf.readMaillog().split('\n').slice(-40).join('\n'));
  } finally {
    await peers.stopAll();
  }
}

if (argv[0] === '--child') void child(Number(argv[1]), argv[2] ?? '');
else await main();
