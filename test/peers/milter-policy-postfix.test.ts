/**
 * Tier "peers": one private Postfix 3.7 configured with docs/mta-integration.md's `main.cf` and
 * `master.cf` as they stand — the milter AND the policy service — with only the listen
 * addresses substituted (test/bench/mta-integration-doc.ts): mta-policy's milter on
 * 127.0.0.1:0 and its policy server on a unix socket, both in-process on ONE engine, enforcing
 * examples/northwind.yaml moved onto loopback (test/postfix-policy/helpers.ts: the Scanner
 * Relay is 127.20.30.40; 127.0.0.80 is "the Internet"). The snippet's `mynetworks` (this host
 * only) holds neither, so Postfix's relay check is strict and every relay is the policy
 * service's grant. SASL through a private Dovecot, delivery to smtp-sink, swaks as the client
 * with `--local-interface` choosing the source address.
 *
 * What the admin's paste must do, end to end: the scanner relays anonymously and the delivered
 * message carries the milter's flag headers (inbound copies removed); relay from anywhere else
 * is refused at RCPT with the policy's text; submission without AUTH is refused; an AUTH over
 * STARTTLS submits.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMilter } from '../../adapters/milter/enforce.js';
import { postfixEndpoint } from '../../adapters/milter/listen.js';
import type { MilterServer } from '../../adapters/milter/server.js';
import { PolicyServer } from '../../adapters/postfix-policy/server.js';
import { Engine } from '../../engine/engine.js';
import { FLAG_HEADERS } from '../../engine/headers.js';
import { docPostfixMainAt, docPostfixServices } from '../bench/mta-integration-doc.js';
import { recordingLogger, type LogLine } from '../milter/helpers.js';
import { INTERNET_IP, SCANNER_IP, northwindOnLoopback } from '../postfix-policy/helpers.js';
import { PeerStack, smtpSink, startDovecot, startPostfix, swaks, type PostfixInstance, type SmtpSink, type SwaksOptions } from './harness.js';
import { describePeers } from './skip.js';

const NANCY = { user: 'nancy', password: 'nancy-secret' };
const RELAY_DENIED = /^550 5\.7\.54 .*Unable to relay recipient in non-accepted domain$/m;
const peers = new PeerStack();
const decisions: LogLine[] = [];
let pf: PostfixInstance;
let sink: SmtpSink;

describePeers('peers: one Postfix 3.7 with the documented milter and policy service together', ['postfix', 'smtp-tools', 'swaks', 'dovecot', 'openssl'], () => {
  beforeAll(async () => {
    const dv = peers.add(await startDovecot({ users: [{ name: NANCY.user, password: NANCY.password }], lmtp: false, extraConf: 'auth_failure_delay = 0\n' }));
    sink = peers.add(await smtpSink());
    // Placeholder bindings until Postfix has its ports; then reloaded.
    const engine = await Engine.create({ config: northwindOnLoopback({ smtp: [25], submission: [587] }), logger: recordingLogger(decisions) });
    const milter: MilterServer = await startMilter(engine, { listen: 'inet:0@127.0.0.1', logger: recordingLogger() });
    peers.add({ stop: () => milter.close(1_000) });
    // smtpd runs as `postfix`, unchrooted in the harness: a traversable directory and mode 0666
    // here, a `postfix`-group socket (the default 0660) in a deployment.
    const sockDir = mkdtempSync(join(tmpdir(), 'milter-policy-peers-'));
    chmodSync(sockDir, 0o755);
    peers.add({ stop: async () => rmSync(sockDir, { recursive: true, force: true }) });
    const policy = await PolicyServer.start({ listen: `unix:${join(sockDir, 'policy.sock')}`, engine, logger: recordingLogger(), socketMode: 0o666 });
    peers.add({ stop: () => policy.close(1_000) });
    pf = peers.add(await startPostfix({
      tls: true,
      dovecotSasl: dv.authSocket,
      delivery: { kind: 'relay', port: sink.port },
      main: docPostfixMainAt({ milter: postfixEndpoint(milter.address), policy: policy.postfixEndpoint }),
      services: { submission: docPostfixServices()['submission'] ?? {} },
    }));
    await engine.reload(northwindOnLoopback({ smtp: [pf.port], submission: [pf.ports['submission'] ?? 0] }));
  });
  afterAll(() => peers.stopAll());

  const send = (service: string, from: string, over: Partial<SwaksOptions> = {}): ReturnType<typeof swaks> =>
    swaks({ server: `127.0.0.1:${pf.ports[service]}`, from: 'sender@northwind.test', to: 'bob@example.org', args: ['--local-interface', from], ...over });
  const replies = (r: { replies: readonly string[] }): string => r.replies.join('\n');
  const find = async (subject: string): Promise<string | undefined> => (await sink.messages()).find((m) => /^Subject: (.*)$/m.exec(m.message)?.[1]?.trim() === subject)?.message;
  /** Postfix relays asynchronously: the delivered copy, waited for (bounded). */
  const delivered = async (subject: string): Promise<string | undefined> => {
    for (let i = 0; i < 150; i++) {
      const m = await find(subject);
      if (m !== undefined) return m;
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  };
  const headerLines = (msg: string, name: string): string[] =>
    msg.slice(0, msg.indexOf('\n\n')).split('\n').filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  /** Which adapters decided RCPT for this connector with this reason, in order. */
  const rcptBy = (connector: string, reason: string): unknown[] =>
    decisions.filter((d) => d.obj['stage'] === 'rcpt' && d.obj['connector'] === connector && d.obj['reason'] === reason).map((d) => d.obj['adapter']);

  it('the scanner relays anonymously: granted by the policy service, judged again by the milter, delivered with its flag headers', async () => {
    const r = await send('smtp', SCANNER_IP, {
      from: 'scanner@northwind.test',
      headers: ['Subject: scanner-relay', `${FLAG_HEADERS.auth_as}: Internal`, `${FLAG_HEADERS.bypass_anti_spam.toUpperCase()}: true`],
    });
    expect(r.code, r.stdout).toBe(0);
    const msg = await delivered('scanner-relay');
    expect(msg, JSON.stringify((await sink.messages()).map((m) => m.message.slice(0, 300)))).toBeDefined();
    // The forged copies are gone; the milter's own flag says what the session really was.
    expect(headerLines(msg ?? '', FLAG_HEADERS.auth_as)).toEqual([`${FLAG_HEADERS.auth_as}: Anonymous`]);
    expect(headerLines(msg ?? '', FLAG_HEADERS.bypass_anti_spam)).toEqual([]);
    expect(rcptBy('Scanner Relay', 'ok_rcpt')).toEqual(['postfix-policy', 'milter']);
  });

  it('refuses relay from another address at RCPT with the policy\'s text (Postfix strict, the milter never asked); delivers to an accepted domain', async () => {
    const r = await send('smtp', INTERNET_IP, { headers: ['Subject: internet-relay'] });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(RELAY_DENIED);
    expect(rcptBy('Default Frontend SMTP01', 'relay_denied')).toEqual(['postfix-policy']);
    const local = await send('smtp', INTERNET_IP, { from: 'alice@example.net', to: 'nancy@northwind.test', headers: ['Subject: inbound-ok'] });
    expect(local.code, local.stdout).toBe(0);
    const msg = await delivered('inbound-ok');
    expect(headerLines(msg ?? '', FLAG_HEADERS.auth_as)).toEqual([`${FLAG_HEADERS.auth_as}: Anonymous`]);
    expect(await find('internet-relay')).toBeUndefined();
  });

  it('refuses submission without AUTH (the milter, at MAIL), and submits for an AUTH over STARTTLS', async () => {
    const anon = await send('submission', INTERNET_IP, { from: 'nancy@northwind.test', to: 'customer@example.test', tls: 'starttls', headers: ['Subject: anon-submission'] });
    expect(anon.code).not.toBe(0);
    expect(replies(anon)).toMatch(/^530 5\.7\.1 Client was not authenticated$/m);
    const ok = await send('submission', INTERNET_IP, { from: 'nancy@northwind.test', to: 'customer@example.test', tls: 'starttls', auth: NANCY, headers: ['Subject: submitted'] });
    expect(ok.code, ok.stdout).toBe(0);
    const msg = await delivered('submitted');
    expect(headerLines(msg ?? '', FLAG_HEADERS.auth_as)).toEqual([`${FLAG_HEADERS.auth_as}: Internal`]);
    expect(await find('anon-submission')).toBeUndefined();
  });
});
