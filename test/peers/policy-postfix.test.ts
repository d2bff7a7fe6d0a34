/**
 * Tier "peers": a private Postfix 3.7 whose relay check is strict and delegates relay grants to
 * mta-policy's policy server (in-process, 127.0.0.1:0), enforcing examples/northwind.yaml moved
 * onto loopback (test/postfix-policy/helpers.ts: the Scanner Relay is 127.20.30.40, the LAN
 * 127.20.0.0/16; other loopback sources such as 127.0.0.80 are "the Internet"):
 *
 *   smtpd_relay_restrictions and mynetworks as docs/mta-integration.md's `main.cf` gives them
 *   (test/bench/mta-integration-doc.ts; the policy service's address substituted):
 *   permit_mynetworks, check_policy_service …, reject_unauth_destination, with mynetworks this
 *   host only, which holds none of the test clients: nothing is relayed by Postfix's own grant.
 *   No milter here: what the policy service decides alone.
 *
 * Listeners: `smtp` → the port-25 connectors; `submission` → Client Frontend (SASL through a
 * private Dovecot, over STARTTLS); `broken` → the same port-25 connectors, but through a second
 * policy server whose engine's counter store fails (an engine failure); `dip` → a stand-in
 * policy service that answers DEFER_IF_PERMIT, showing why an engine failure is a plain 4xx;
 * `unix` → the first policy server's engine again, through a unix-socket listener.
 * Clients pick their source address with swaks `--local-interface` (all of 127/8 is local).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PolicyServer } from '../../adapters/postfix-policy/server.js';
import { Engine } from '../../engine/engine.js';
import { docPostfixMain, docRelayRestrictionsAt } from '../bench/mta-integration-doc.js';
import { INTERNET_IP, SCANNER_IP, northwindOnLoopback, recordingLogger, unreachableCounters, type LogLine } from '../postfix-policy/helpers.js';
import { PeerStack, smtpSink, startDovecot, startPostfix, swaks, type PostfixInstance, type SmtpSink, type SwaksOptions } from './harness.js';
import { describePeers } from './skip.js';

const NANCY = { user: 'nancy', password: 'nancy-secret' };
const RELAY_DENIED = /^550 5\.7\.54 .*Unable to relay recipient in non-accepted domain$/m;
const peers = new PeerStack();
const decisions: LogLine[] = [];
let pf: PostfixInstance;
let sink: SmtpSink;

/** The documented `smtpd_relay_restrictions`, delegating to the policy service at `endpoint`. */
const strict = (endpoint: string): string => docRelayRestrictionsAt(endpoint);

describePeers('peers: Postfix 3.7 with a strict relay check delegating grants to the policy server', ['postfix', 'smtp-tools', 'swaks', 'dovecot', 'openssl'], () => {
  beforeAll(async () => {
    const dv = peers.add(await startDovecot({ users: [{ name: NANCY.user, password: NANCY.password }], lmtp: false, extraConf: 'auth_failure_delay = 0\n' }));
    sink = peers.add(await smtpSink());
    // The engines start on placeholder bindings; they are reloaded once Postfix has its ports.
    const placeholder = northwindOnLoopback({ smtp: [25], submission: [587] });
    const engine = await Engine.create({ config: placeholder, logger: recordingLogger(decisions) });
    const policy = await PolicyServer.start({ listen: 'inet:0@127.0.0.1', engine, logger: recordingLogger() });
    peers.add({ stop: () => policy.close(1_000) });
    const broken = await Engine.create({ config: placeholder, counters: unreachableCounters() });
    const brokenPolicy = await PolicyServer.start({ listen: 'inet:0@127.0.0.1', engine: broken, logger: recordingLogger() });
    peers.add({ stop: () => brokenPolicy.close(1_000) });
    const dip = await deferIfPermitService();
    peers.add({ stop: () => new Promise<void>((r) => dip.server.close(() => r())) });
    // The same engine over a unix socket; smtpd runs as `postfix` (not chrooted here), so the
    // socket must be reachable by it: a world-traversable directory and mode 0666 in this test,
    // a `postfix`-group socket (the default 0660) in a deployment.
    const sockDir = mkdtempSync(join(tmpdir(), 'policy-peers-'));
    chmodSync(sockDir, 0o755);
    peers.add({ stop: async () => rmSync(sockDir, { recursive: true, force: true }) });
    const unixPolicy = await PolicyServer.start({ listen: `unix:${join(sockDir, 'policy.sock')}`, engine, logger: recordingLogger(), socketMode: 0o666 });
    peers.add({ stop: () => unixPolicy.close(1_000) });
    pf = peers.add(await startPostfix({
      tls: true,
      dovecotSasl: dv.authSocket,
      delivery: { kind: 'relay', port: sink.port },
      main: { mynetworks: docPostfixMain()['mynetworks'] ?? '', smtpd_relay_restrictions: strict(policy.postfixEndpoint) },
      services: {
        submission: { smtpd_sasl_auth_enable: 'yes', smtpd_tls_auth_only: 'yes' },
        broken: { smtpd_relay_restrictions: strict(brokenPolicy.postfixEndpoint) },
        dip: { smtpd_relay_restrictions: strict(`inet:127.0.0.1:${dip.port}`) },
        unix: { smtpd_relay_restrictions: strict(unixPolicy.postfixEndpoint) },
      },
    }));
    const smtpPorts = [pf.port, pf.ports['broken'] ?? 0, pf.ports['dip'] ?? 0, pf.ports['unix'] ?? 0];
    const config = northwindOnLoopback({ smtp: smtpPorts, submission: [pf.ports['submission'] ?? 0] });
    await engine.reload(config);
    await broken.reload(config);
  });
  afterAll(() => peers.stopAll());

  const send = (service: string, from: string, over: Partial<SwaksOptions> = {}): ReturnType<typeof swaks> =>
    swaks({ server: `127.0.0.1:${pf.ports[service]}`, from: 'sender@northwind.test', to: 'bob@example.org', args: ['--local-interface', from], ...over });
  const replies = (r: { replies: readonly string[] }): string => r.replies.join('\n');
  const relayed = async (subject: string): Promise<boolean> => (await sink.messages()).some((m) => /^Subject: (.*)$/m.exec(m.message)?.[1]?.trim() === subject);
  /** Postfix relays asynchronously: wait (bounded) for the message to reach the sink. */
  const waitRelayed = async (subject: string): Promise<boolean> => {
    for (let i = 0; i < 150; i++) {
      if (await relayed(subject)) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };

  it('grants anonymous relay from the Scanner Relay connector\'s remote IP, and Postfix relays it', async () => {
    const r = await send('smtp', SCANNER_IP, { from: 'scanner@northwind.test', headers: ['Subject: scanner-relay'] });
    expect(r.code, r.stdout).toBe(0);
    expect(await waitRelayed('scanner-relay'), JSON.stringify((await sink.messages()).map((m) => m.message.slice(0, 300)))).toBe(true);
    expect(decisions.some((d) => d.obj['stage'] === 'rcpt' && d.obj['connector'] === 'Scanner Relay' && d.obj['verdict'] === 'continue' && d.obj['reason'] === 'ok_rcpt' && d.obj['adapter'] === 'postfix-policy'), JSON.stringify(decisions.slice(-3))).toBe(true);
  });

  it('refuses the same relay from another address with the policy\'s text', async () => {
    const r = await send('smtp', INTERNET_IP, { headers: ['Subject: internet-relay'] });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(RELAY_DENIED);
    expect(await relayed('internet-relay')).toBe(false);
  });

  it('works the same over a unix socket: the scanner relays, another address is refused', async () => {
    const ok = await send('unix', SCANNER_IP, { from: 'scanner@northwind.test', headers: ['Subject: unix-relay'] });
    expect(ok.code, ok.stdout).toBe(0);
    expect(await waitRelayed('unix-relay')).toBe(true);
    const refused = await send('unix', INTERNET_IP);
    expect(replies(refused)).toMatch(RELAY_DENIED);
  });

  it('lets anonymous mail to an accepted domain through (the policy grants the recipient)', async () => {
    const r = await send('smtp', INTERNET_IP, { from: 'alice@example.net', to: 'nancy@northwind.test', headers: ['Subject: inbound'] });
    expect(r.code, r.stdout).toBe(0);
  });

  it('grants relay to a user who authenticated on the submission service, refuses it without AUTH', async () => {
    const ok = await send('submission', INTERNET_IP, { from: 'nancy@northwind.test', tls: 'starttls', auth: NANCY, headers: ['Subject: submitted'] });
    expect(ok.code, ok.stdout).toBe(0);
    const anon = await send('submission', INTERNET_IP, { from: 'nancy@northwind.test', tls: 'starttls', headers: ['Subject: anon-submission'] });
    expect(anon.code).not.toBe(0);
    expect(replies(anon)).toMatch(/^5[0-9][0-9] 5\.[0-9]+\.[0-9]+ /m);
    expect(await waitRelayed('submitted')).toBe(true);
    expect(await relayed('anon-submission')).toBe(false);
  });

  it('an engine failure is a 4xx at the client, and nothing is relayed', async () => {
    const r = await send('broken', SCANNER_IP, { from: 'scanner@northwind.test', headers: ['Subject: engine-failure'] });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(/^451 4\.3\.0 .*Temporary policy failure, try again later$/m);
    expect(await relayed('engine-failure')).toBe(false);
  });

  it('(why not DEFER_IF_PERMIT) before reject_unauth_destination it turns a relay into a permanent 554', async () => {
    const r = await send('dip', SCANNER_IP, { from: 'scanner@northwind.test' });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(/^554 5\.7\.1 .*Relay access denied$/m);
  });
});

/** A policy service that answers every request with DEFER_IF_PERMIT (Postfix's own framing, read naively). */
async function deferIfPermitService(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    let buf = '';
    socket.on('data', (b) => {
      buf += b.toString('latin1');
      for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
        buf = buf.slice(end + 2);
        socket.write('action=DEFER_IF_PERMIT Service unavailable\n\n');
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}
