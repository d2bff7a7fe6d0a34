/**
 * The submission listener with a private Dovecot (test/peers/dovecot.ts): logins checked over
 * Dovecot's auth-client socket (SASL), and LMTP delivery into Dovecot's Maildirs as next hop.
 */
import { afterEach, expect, it } from 'vitest';
import { message, RawClient, startListener, type Fixture } from '../submission/listener-fixture.js';
import { PeerStack, startDovecot, type DovecotInstance } from './harness.js';
import { describePeers } from './skip.js';

const peers = new PeerStack();
afterEach(() => peers.stopAll());

const CAROL = { name: 'carol@example.test', password: 'carol-dovecot-pw' };

async function dovecot(): Promise<DovecotInstance> {
  // No auth penalty: the wrong-password test would wait 2 s for Dovecot's own delay.
  return peers.add(await startDovecot({ users: [CAROL], extraConf: 'auth_failure_delay = 0' }));
}

async function listener(dv: DovecotInstance, nextHop: string): Promise<Fixture> {
  return peers.add(await startListener({ nextHop, identities: `  dovecot_auth: "unix:${dv.authSocket}"`, client: 'message_rate_limit: unlimited' }));
}

async function tlsSession(fx: Fixture): Promise<RawClient> {
  const { c } = await RawClient.connect(fx.ports.client);
  await c.cmd('EHLO client.test');
  await c.starttls(fx.ca);
  await c.cmd('EHLO client.test');
  return c;
}

describePeers('submission listener with Dovecot', ['dovecot'], () => {
  it('login through Dovecot SASL, wrong password refused, then LMTP delivery into Dovecot', async () => {
    const dv = await dovecot();
    if (dv.lmtpSocket === undefined) throw new Error('the Dovecot peer has no LMTP socket');
    const fx = await listener(dv, `lmtp:${dv.lmtpSocket}`);
    const c = await tlsSession(fx);
    expect(await c.authPlain(CAROL.name, 'wrong')).toMatchObject({ code: 535 });
    expect(await c.authPlain(CAROL.name, CAROL.password)).toMatchObject({ code: 235, text: '2.7.0 Authentication successful' });
    expect((await c.cmd(`MAIL FROM:<${CAROL.name}>`)).code).toBe(250);
    expect((await c.cmd(`RCPT TO:<${CAROL.name}>`)).code).toBe(250);
    // A recipient Dovecot does not know is refused by Dovecot at RCPT, and mirrored.
    const unknown = await c.cmd('RCPT TO:<nobody@example.test>');
    expect(unknown.code).toBeGreaterThanOrEqual(400);
    expect((await c.data(message({ from: CAROL.name, to: CAROL.name, id: 'lmtp-1@test' }))).code).toBe(250);
    c.destroy();
    const [m] = await dv.waitForMessages(CAROL.name, 1, 10_000);
    expect(m).toContain('Message-ID: <lmtp-1@test>');
    expect(m).toMatch(/Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\r?\n\t\(using TLSv1\.3[^\n]*\n\t\(Authenticated sender: carol@example\.test\)/);
  });

  it('Dovecot down → 454 4.7.0 (a temporary failure, not a wrong password)', async () => {
    const dv = await dovecot();
    const fx = await listener(dv, 'maildir:mail');
    await dv.stop();
    const c = await tlsSession(fx);
    expect(await c.authPlain(CAROL.name, CAROL.password)).toMatchObject({ code: 454, text: '4.7.0 Temporary authentication failure' });
    // Not counted as a logon failure: the connection stays usable.
    expect(await c.authPlain(CAROL.name, CAROL.password)).toMatchObject({ code: 454 });
    expect(await c.authPlain(CAROL.name, CAROL.password)).toMatchObject({ code: 454 });
    c.destroy();
  });
});
