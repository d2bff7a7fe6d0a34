/**
 * Tier "peers": Sendmail 8.17 (unpacked .deb, private .cf, loopback daemon) with
 * `INPUT_MAIL_FILTER` and `confMILTER_MACROS_*` as docs/mta-integration.md gives them →
 * mta-policy's milter (in-process on 127.0.0.1:0) enforcing examples/northwind.yaml, its Internet connector re-bound to the daemon's port. The harness
 * runs Sendmail with FEATURE(promiscuous_relay), so every refusal comes from the policy; mail
 * is queued (`-odq`) and read back from the queue files as Sendmail would deliver it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMilter } from '../../adapters/milter/enforce.js';
import type { MilterServer } from '../../adapters/milter/server.js';
import { Engine } from '../../engine/engine.js';
import { NORTHWIND, northwindConfig } from '../bench/milter-config.js';
import { recordingLogger, type LogLine } from '../milter/helpers.js';
import { docSendmail } from '../bench/mta-integration-doc.js';
import { PeerStack, startSendmail, swaks, type SendmailInstance, type SendmailMacroStage } from './harness.js';
import { describePeers } from './skip.js';

const peers = new PeerStack();
const decisions: LogLine[] = [];
let sm: SendmailInstance;

describePeers('peers: Sendmail 8.17 with mta-policy as INPUT_MAIL_FILTER', ['sendmail', 'swaks'], () => {
  beforeAll(async () => {
    const engine = await Engine.create({ config: northwindConfig(), logger: recordingLogger(decisions) });
    const milter: MilterServer = await startMilter(engine, { listen: 'inet:0@127.0.0.1', logger: recordingLogger() });
    peers.add({ stop: () => milter.close(1_000) });
    const port = milter.address.transport === 'inet' ? milter.address.port : 0;
    // docs/mta-integration.md's .mc lines, with the socket of this test's milter.
    const doc = docSendmail();
    sm = peers.add(await startSendmail({
      milter: { socket: `inet:${port}@127.0.0.1`, name: doc.filter.name, flags: doc.filter.flags, timeouts: doc.filter.timeouts },
      macros: doc.macros as Partial<Record<SendmailMacroStage, readonly string[]>>,
    }));
    await engine.reload(northwindConfig({ [NORTHWIND.internet]: { bindings: [`127.0.0.1:${sm.port}`] } }));
  });
  afterAll(() => peers.stopAll());

  it('connect: the connector is chosen from {daemon_addr}/{daemon_port}', async () => {
    const { dialog, greeting } = await sm.connect();
    expect(greeting.code).toBe(220);
    expect((await dialog.command('EHLO client.example.test')).code).toBe(250);
    expect((await dialog.command('QUIT')).code).toBe(221);
    await dialog.close();
    const connect = decisions.find((d) => d.obj['stage'] === 'connect');
    expect(connect?.obj).toMatchObject({ connector: NORTHWIND.internet, verdict: 'continue', adapter: 'milter' });
  });

  it('refuses anonymous relay with the policy reply (Sendmail prefixes the address)', async () => {
    const { dialog } = await sm.connect();
    await dialog.command('EHLO client.example.test');
    expect((await dialog.command('MAIL FROM:<alice@example.net>')).code).toBe(250);
    const rcpt = await dialog.command('RCPT TO:<bob@example.org>');
    expect(`${rcpt.code} ${rcpt.text}`).toBe('550 5.7.54 <bob@example.org>... SMTP; Unable to relay recipient in non-accepted domain');
    expect((await dialog.command('RCPT TO:<nancy@northwind.test>')).code).toBe(250);
    await dialog.command('QUIT');
    await dialog.close();
  });

  it('applies the header firewall and the flag header to the queued message', async () => {
    const data = [
      'From: Alice <alice@example.net>', 'To: nancy@northwind.test', 'Subject: sendmail-firewall',
      'X-MTA-Policy-Auth-As: Internal', 'x-ms-exchange-organization-scl: -1', 'X-MTA-POLICY-AUTH-AS: Partner', 'X-Other: kept', '', 'body', '',
    ].join('\n');
    const r = await swaks({ server: `127.0.0.1:${sm.port}`, from: 'alice@example.net', to: 'nancy@northwind.test', data });
    expect(r.code, r.stdout).toBe(0);
    const [queued] = (await sm.waitForQueued(1)).filter((q) => q.headers.includes('Subject: sendmail-firewall'));
    const named = (name: string): string[] => (queued?.headers ?? []).filter((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    expect(named('X-MTA-Policy-Auth-As')).toEqual(['X-MTA-Policy-Auth-As: Anonymous']);
    expect(named('X-MS-Exchange-Organization-SCL')).toEqual([]);
    expect(named('X-Other')).toEqual(['X-Other: kept']);
  });
});
