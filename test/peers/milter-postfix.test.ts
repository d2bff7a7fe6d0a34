/**
 * Tier "peers": a private Postfix 3.7 with `smtpd_milters` → mta-policy's milter (in-process on
 * 127.0.0.1:0) enforcing examples/northwind.yaml, SASL through a private Dovecot, delivery to
 * smtp-sink, swaks as the SMTP client.
 *
 * Postfix runs docs/mta-integration.md's `main.cf` entire (test/bench/mta-integration-doc.ts),
 * the policy service included (an in-process policy server on the same engine). The clients
 * here connect from 127.0.0.1, inside the snippet's `mynetworks`: Postfix's `permit_mynetworks`
 * passes them before the policy service is asked, so every refusal they see is the milter's —
 * the milter judges what Postfix's own relay grant lets through. (Clients outside `mynetworks`,
 * where the policy service grants and refuses relay: milter-policy-postfix.test.ts.) The listeners:
 *   smtp       → connector "Default Frontend SMTP01" (anonymous Internet mail)
 *   submission → "Client Frontend SMTP01": the 587 service exactly as docs/mta-integration.md's
 *                master.cf snippet gives it (STARTTLS required, SASL, relay for SASL only)
 *   lax        → the same connector behind a deliberately lax service (SASL without TLS allowed,
 *                relay by mynetworks) so a client can AUTH in plaintext or not at all and the
 *                policy alone must refuse it at MAIL
 *   broken     → the same connector through a second milter whose engine's counter store
 *                fails (an engine failure)
 *   killable   → the Internet connector through mta-policy's milter as a process of its own
 *                on a unix socket (test/bench/milter-process.ts), which a test SIGKILLs
 * The configuration is northwind.yaml with those connectors re-bound to Postfix's loopback
 * ports, loaded into the running engine with `engine.reload` once Postfix has its ports.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMilter } from '../../adapters/milter/enforce.js';
import { DAEMON_MACROS_HINT } from '../../adapters/milter/facts.js';
import { postfixEndpoint } from '../../adapters/milter/listen.js';
import type { MilterServer } from '../../adapters/milter/server.js';
import { PolicyServer } from '../../adapters/postfix-policy/server.js';
import { MemoryCounters, type Counters } from '../../engine/counters.js';
import { Engine } from '../../engine/engine.js';
import { NORTHWIND, northwindConfig, northwindText } from '../bench/milter-config.js';
import { spawnMilterProcess, type MilterProcess } from '../bench/milter-process.js';
import { docPostfixMainAt, docPostfixServices } from '../bench/mta-integration-doc.js';
import { recordingLogger, type LogLine } from '../milter/helpers.js';
import { PeerStack, SmtpDialog, makeRunDir, runCommand, startDovecot, startPostfix, smtpSink, swaks, withPostfix, type PostfixInstance, type SmtpSink } from './harness.js';
import { removeRunDir } from './proc.js';
import { describePeers } from './skip.js';

const NANCY = { user: 'nancy', password: 'nancy-secret' };
const peers = new PeerStack();
const port = (m: MilterServer): number => (m.address.transport === 'inet' ? m.address.port : 0);
const decisions: LogLine[] = [];
const milterLog = recordingLogger();
let engine: Engine;
let milter: MilterServer;
let pf: PostfixInstance;
let sink: SmtpSink;
let killable: MilterProcess;
let policy: PolicyServer;
/** The documented main.cf, talking to this milter and the policy server. */
const mainCf = (milterAt: MilterServer): Record<string, string> => docPostfixMainAt({ milter: postfixEndpoint(milterAt.address), policy: policy.postfixEndpoint });

describePeers('peers: Postfix 3.7 with mta-policy as its milter', ['postfix', 'smtp-tools', 'swaks', 'dovecot', 'openssl'], () => {
  beforeAll(async () => {
    const dv = peers.add(await startDovecot({ users: [{ name: NANCY.user, password: NANCY.password }], lmtp: false, extraConf: 'auth_failure_delay = 0\n' }));
    sink = peers.add(await smtpSink());
    engine = await Engine.create({ config: northwindConfig(), logger: recordingLogger(decisions) });
    milter = await startMilter(engine, { listen: 'inet:0@127.0.0.1', logger: milterLog });
    peers.add({ stop: () => milter.close(1_000) });
    policy = await PolicyServer.start({ listen: 'inet:0@127.0.0.1', engine, logger: recordingLogger() });
    peers.add({ stop: () => policy.close(1_000) });
    // A second engine whose counter store is down: every MAIL on a rate-limited connector fails.
    const base = new MemoryCounters();
    const failing: Counters = {
      openConnection: (k) => base.openConnection(k),
      closeConnection: (k) => base.closeConnection(k),
      recordMessage: (k) => base.recordMessage(k),
      messagesLastMinute: () => Promise.reject(new Error('counter store unreachable')),
    };
    const broken = await Engine.create({ config: northwindConfig(), counters: failing });
    const brokenMilter = await startMilter(broken, { listen: 'inet:0@127.0.0.1', logger: recordingLogger() });
    peers.add({ stop: () => brokenMilter.close(1_000) });
    const runDir = await makeRunDir('milter-process');
    peers.add({ stop: async () => removeRunDir(runDir) });
    const socket = join(runDir, 'milter.sock');
    pf = peers.add(await startPostfix({
      tls: true,
      dovecotSasl: dv.authSocket,
      delivery: { kind: 'relay', port: sink.port },
      main: mainCf(milter),
      services: {
        submission: docPostfixServices()['submission'] ?? {},
        lax: { smtpd_sasl_auth_enable: 'yes', smtpd_tls_auth_only: 'no' },
        broken: { smtpd_sasl_auth_enable: 'yes', smtpd_milters: `inet:127.0.0.1:${port(brokenMilter)}` },
        killable: { smtpd_milters: `unix:${socket}` },
      },
    }));
    const overrides = {
      [NORTHWIND.internet]: { bindings: [`127.0.0.1:${pf.port}`, `127.0.0.1:${pf.ports['killable']}`] },
      [NORTHWIND.client]: { bindings: [`127.0.0.1:${pf.ports['submission']}`, `127.0.0.1:${pf.ports['lax']}`, `127.0.0.1:${pf.ports['broken']}`] },
    };
    const config = northwindConfig(overrides, { milter: { listen: `inet:${port(milter)}@127.0.0.1` } });
    await engine.reload(config);
    await broken.reload(config);
    const file = join(runDir, 'mta-policy.yaml');
    writeFileSync(file, northwindText(overrides, { milter: { listen: `unix:${socket}` } }));
    killable = await spawnMilterProcess({ config: file, listen: `unix:${socket}`, socketMode: 0o666 });
    peers.add({ stop: () => killable.kill() });
  });
  afterAll(() => peers.stopAll());

  const smtp = (): string => `127.0.0.1:${pf.port}`;
  const submission = (): string => `127.0.0.1:${pf.ports['submission']}`;
  const lax = (): string => `127.0.0.1:${pf.ports['lax']}`;
  const replies = (r: { replies: readonly string[] }): string => r.replies.join('\n');
  /** The delivered copy of the message with this Subject (smtp-sink capture). */
  const delivered = async (subject: string): Promise<string> => {
    const all = await sink.waitForMessages(1, 15_000);
    const find = async (): Promise<string | undefined> => (await sink.messages()).find((m) => m.message.includes(`Subject: ${subject}\n`))?.message;
    for (let i = 0; i < 100; i++) {
      const m = await find();
      if (m !== undefined) return m;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no delivered message with Subject ${subject} among ${all.length}`);
  };
  const headerLines = (msg: string, name: string): string[] =>
    msg.slice(0, msg.indexOf('\n\n')).split('\n').filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));

  it('refuses anonymous relay outside the relay connector, delivers to an accepted domain', async () => {
    const relay = await swaks({ server: smtp(), from: 'alice@example.net', to: 'bob@example.org' });
    expect(relay.code).not.toBe(0);
    expect(replies(relay)).toMatch(/^550 5\.7\.54 SMTP; Unable to relay recipient in non-accepted domain$/m);
    const local = await swaks({ server: smtp(), from: 'alice@example.net', to: 'nancy@northwind.test', headers: ['Subject: inbound-ok'] });
    expect(local.code, local.stdout).toBe(0);
    expect(await delivered('inbound-ok')).toMatch(/^X-MTA-Policy-Auth-As: Anonymous$/m);
    const rcpt = decisions.filter((d) => d.obj['stage'] === 'rcpt');
    expect(rcpt.map((d) => [d.obj['connector'], d.obj['reason'], d.obj['adapter']])).toEqual([
      [NORTHWIND.internet, 'relay_denied', 'milter'],
      [NORTHWIND.internet, 'ok_rcpt', 'milter'],
    ]);
  });

  it('strips inbound trust headers forged in any case and adds the flag header Postfix delivers', async () => {
    const data = [
      'From: Alice <alice@example.net>', 'To: nancy@northwind.test', 'Subject: firewall-1',
      'x-mta-policy-AUTH-as: Internal', 'X-MS-Exchange-Organization-SCL: -1', 'X-MTA-POLICY-BYPASS-ANTI-SPAM: true',
      'X-MTA-Policy-Auth-As: Partner', 'X-Other: kept', '', 'body', '',
    ].join('\n');
    const r = await swaks({ server: smtp(), from: 'alice@example.net', to: 'nancy@northwind.test', data });
    expect(r.code, r.stdout).toBe(0);
    const msg = await delivered('firewall-1');
    expect(headerLines(msg, 'X-MTA-Policy-Auth-As')).toEqual(['X-MTA-Policy-Auth-As: Anonymous']);
    expect(headerLines(msg, 'X-MTA-Policy-Bypass-Anti-Spam')).toEqual([]);
    expect(headerLines(msg, 'X-MS-Exchange-Organization-SCL')).toEqual([]);
    expect(headerLines(msg, 'X-Other')).toEqual(['X-Other: kept']);
  });

  it('refuses submission without AUTH on the client connector', async () => {
    const r = await swaks({ server: lax(), from: 'nancy@northwind.test', to: 'customer@example.test' });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(/^530 5\.7\.1 Client was not authenticated$/m);
  });

  it('refuses a plaintext AUTH (Postfix → Dovecot) on the BasicAuthRequireTLS connector at MAIL', async () => {
    const r = await swaks({ server: lax(), from: 'nancy@northwind.test', to: 'customer@example.test', auth: NANCY });
    expect(replies(r)).toMatch(/^235 2\.7\.0 /m); // Postfix accepted the credentials…
    expect(replies(r)).toMatch(/^530 5\.7\.0 Authentication over an unencrypted connection is not permitted$/m); // …the policy did not
    expect(r.code).not.toBe(0);
  });

  it('the documented submission service: relays for an AUTH over STARTTLS; the delivered message carries the Internal flag headers', async () => {
    const r = await swaks({
      server: submission(), tls: 'starttls', auth: NANCY, from: 'nancy@northwind.test', to: 'customer@example.test',
      headers: ['Subject: submitted-1', 'From: Nancy <nancy@northwind.test>', 'X-MTA-Policy-Auth-As: Anonymous'],
    });
    expect(r.code, r.stdout).toBe(0);
    const msg = await delivered('submitted-1');
    expect(headerLines(msg, 'X-MTA-Policy-Auth-As')).toEqual(['X-MTA-Policy-Auth-As: Internal']);
    expect(headerLines(msg, 'X-MTA-Policy-Bypass-Anti-Spam')).toEqual(['X-MTA-Policy-Bypass-Anti-Spam: true']);
    const mail = decisions.filter((d) => d.obj['stage'] === 'mail' && d.obj['connector'] === NORTHWIND.client).at(-1);
    expect(mail?.obj['reason']).toBe('ok_mail');
  });

  it('an engine failure reaches the client as the 4xx fail-safe', async () => {
    const r = await swaks({ server: `127.0.0.1:${pf.ports['broken']}`, from: 'nancy@northwind.test', to: 'customer@example.test' });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(/^451 4\.3\.0 Temporary policy failure, try again later$/m);
  });

  it('why non_smtpd_milters stays empty: local submissions reach the milter without a listener and are held with a 4xx, logged with the hint', async () => {
    const before = milterLog.lines.length;
    await withPostfix({ main: { ...mainCf(milter), non_smtpd_milters: `inet:127.0.0.1:${port(milter)}` } }, async (local) => {
      const mark = local.logOffset();
      // Postfix's sendmail(1) (the postfix package's /usr/sbin/sendmail) → pickup → cleanup → milter.
      const r = await runCommand('/usr/sbin/sendmail', ['-C', local.configDir, '-f', 'root@mx.postfix.test', 'nancy@northwind.test'], {
        input: 'Subject: local\n\nhello\n', env: { ...process.env, MAIL_CONFIG: local.configDir }, timeoutMs: 10_000,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(await local.waitForLog(/milter-reject: CONNECT from localhost\[127\.0\.0\.1\]: 4\.3\.0 /, 10_000, mark)).toBeTruthy();
    });
    const missing = milterLog.lines.slice(before).filter((l) => l.obj['code'] === 'MILTER_MACROS_MISSING');
    expect(missing.length).toBeGreaterThanOrEqual(1);
    expect(missing[0]?.msg).toContain(DAEMON_MACROS_HINT);
  });

  it('with the mta-policy process killed, Postfix tempfails (milter_default_action = tempfail), also mid-session', async () => {
    const killablePort = pf.ports['killable'] ?? 0;
    const before = await swaks({ server: `127.0.0.1:${killablePort}`, from: 'alice@example.net', to: 'bob@example.org' });
    expect(replies(before)).toMatch(/^550 5\.7\.54 /m); // the process enforces…
    const { dialog } = await SmtpDialog.connect(killablePort);
    expect((await dialog.command('EHLO client.test')).code).toBe(250);
    await killable.kill(); // SIGKILL: the open milter connection drops as in a crash
    const mail = await dialog.command('MAIL FROM:<alice@example.net>');
    expect(`${mail.code} ${mail.lines[0]}`).toMatch(/^451 4\.7\.1 /);
    await dialog.close();
    const r = await swaks({ server: `127.0.0.1:${killablePort}`, from: 'alice@example.net', to: 'nancy@northwind.test' });
    expect(r.code).not.toBe(0);
    expect(replies(r)).toMatch(/^451 4\.7\.1 Service unavailable - try again later$/m);
    // The in-process milter (another socket) keeps serving the other listeners.
    const other = await swaks({ server: smtp(), from: 'alice@example.net', to: 'bob@example.org' });
    expect(replies(other)).toMatch(/^550 5\.7\.54 /m);
  });
});
