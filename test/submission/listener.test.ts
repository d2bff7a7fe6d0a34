/**
 * The submission listener over real sockets on 127.0.0.1, with a Maildir next hop: exact
 * transcripts (RawClient) and nodemailer as a real MUA-side client.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAG_HEADERS } from '../../engine/headers.js';
import { message, RawClient, startListener, USERS, type Fixture } from './listener-fixture.js';

let fx: Fixture;
let maildir: string;

beforeAll(async () => {
  fx = await startListener({ nextHop: 'maildir:mail' });
  maildir = join(fx.dir, 'mail');
});
afterAll(async () => fx?.stop());

const delivered = (): string[] => (existsSync(join(maildir, 'new')) ? readdirSync(join(maildir, 'new')).map((f) => readFileSync(join(maildir, 'new', f), 'utf8')) : []);
const deliveredWith = (id: string): string[] => delivered().filter((m) => m.includes(`Message-ID: <${id}>`));

/** A client connection after STARTTLS, EHLO and (optionally) AUTH PLAIN. */
async function submitter(user?: keyof typeof USERS, password?: string): Promise<RawClient> {
  const { c } = await RawClient.connect(fx.ports.client);
  await c.cmd('EHLO client.test');
  expect((await c.starttls(fx.ca)).code).toBe(220);
  await c.cmd('EHLO client.test');
  if (user !== undefined) expect((await c.authPlain(user, password ?? USERS[user])).code).toBe(235);
  return c;
}

type Nodemailer = InstanceType<typeof SMTPConnection>;
function nodemailer(port: number, secure = false): Promise<Nodemailer> {
  const c = new SMTPConnection({ host: '127.0.0.1', port, secure, requireTLS: !secure, name: 'client.test', tls: { ca: readFileSync(fx.ca), servername: 'mail.test' } });
  return new Promise((res, rej) => {
    c.once('error', rej);
    c.connect(() => res(c));
  });
}
const login = (c: Nodemailer, user: string, pass: string, method?: string): Promise<void> =>
  new Promise((res, rej) => c.login({ user, pass, ...(method === undefined ? {} : { method }) } as never, (e?: Error | null) => (e ? rej(e) : res())));
const send = (c: Nodemailer, from: string, to: string[], msg: string): Promise<{ response: string }> =>
  new Promise((res, rej) => c.send({ from, to }, msg, (e, info) => (e ? rej(e) : res(info as { response: string }))));

describe('before TLS on the client connector', () => {
  it('greets with the decision, advertises exactly what it allows, refuses AUTH and MAIL', async () => {
    const { c, greeting } = await RawClient.connect(fx.ports.client);
    expect(greeting).toMatchObject({ code: 220, text: 'mail.test ESMTP' });
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.lines).toEqual(['mail.test Hello [127.0.0.1]', 'PIPELINING', 'SIZE 65536', 'STARTTLS', 'ENHANCEDSTATUSCODES', '8BITMIME', 'SMTPUTF8']);
    // AUTH before STARTTLS: the rfc dialect's refusal (RFC 4954 §6 538), not smtp-server's text
    expect(await c.authPlain('nancy', USERS.nancy)).toMatchObject({ code: 538, text: '5.7.11 Encryption required for requested authentication mechanism' });
    expect(await c.cmd('AUTH LOGIN')).toMatchObject({ code: 538 });
    expect(await c.cmd('MAIL FROM:<nancy@example.test>')).toMatchObject({ code: 530, text: '5.7.0 Authentication required' });
    expect(await c.cmd('AUTH CRAM-MD5')).toMatchObject({ code: 504 });
    expect(await c.cmd('NOOP')).toMatchObject({ code: 250, text: '2.0.0 OK' });
    expect(await c.cmd('QUIT')).toMatchObject({ code: 221 });
    await c.closed;
  });

  it('after STARTTLS: AUTH offered, STARTTLS not; a second STARTTLS is refused', async () => {
    const { c } = await RawClient.connect(fx.ports.client);
    await c.cmd('EHLO client.test');
    await c.starttls(fx.ca);
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.lines).toEqual(['mail.test Hello [127.0.0.1]', 'PIPELINING', 'SIZE 65536', 'AUTH PLAIN LOGIN', 'ENHANCEDSTATUSCODES', '8BITMIME', 'SMTPUTF8']);
    expect(await c.cmd('STARTTLS')).toMatchObject({ code: 503 });
    expect(await c.authPlain('nancy', USERS.nancy)).toMatchObject({ code: 235, text: '2.7.0 Authentication successful' });
    expect(await c.authPlain('nancy', USERS.nancy)).toMatchObject({ code: 503 });
    c.destroy();
  });

  it('STARTTLS injection: commands pipelined behind STARTTLS in cleartext are discarded', async () => {
    const { c } = await RawClient.connect(fx.ports.client);
    await c.cmd('EHLO client.test');
    expect((await c.starttls(fx.ca, 'EHLO evil.test\r\nAUTH PLAIN AG5hbmN5AG5hbmN5LXNlY3JldC0x\r\nMAIL FROM:<nancy@example.test>\r\n')).code).toBe(220);
    // Nothing of the injected session survived: RCPT needs a MAIL, and MAIL needs AUTH.
    expect((await c.cmd('EHLO client.test')).code).toBe(250);
    expect(await c.cmd('RCPT TO:<bob@example.test>')).toMatchObject({ code: 503 });
    expect(await c.cmd('MAIL FROM:<nancy@example.test>')).toMatchObject({ code: 530 });
    c.destroy();
  });

  it('TLS 1.2 is accepted, TLS 1.1 is refused by the server (RFC 8314 §4.1)', async () => {
    const attempt = async (version: 'TLSv1.1' | 'TLSv1.2'): Promise<string> => {
      const { c } = await RawClient.connect(fx.ports.client);
      await c.cmd('EHLO client.test');
      c.write('STARTTLS\r\n');
      expect((await c.read()).code).toBe(220);
      const plain = (c as unknown as { socket: import('node:net').Socket }).socket;
      plain.removeAllListeners('data');
      // SECLEVEL=0 lets this client offer TLS 1.1 at all, so a refusal is the server's (server.ts sets
      // minVersion TLSv1.2; OpenSSL 3's default security level would refuse 1.1 too — the property is tested).
      const s = tls.connect({ socket: plain, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false });
      const r = await new Promise<string>((res) => {
        s.once('secureConnect', () => res(`ok ${s.getProtocol() ?? ''}`));
        s.once('error', (e) => res(e.message));
      });
      s.destroy();
      return r;
    };
    expect(await attempt('TLSv1.2')).toBe('ok TLSv1.2');
    expect(await attempt('TLSv1.1')).toMatch(/alert protocol version/);
  });
});

describe('submission after STARTTLS and AUTH', () => {
  it('nodemailer, AUTH PLAIN: 250 only with the message in the Maildir, trace and flag headers, forged flags removed', async () => {
    const c = await nodemailer(fx.ports.client);
    await login(c, 'nancy', USERS.nancy);
    const msg = message({ from: 'nancy@example.test', to: 'bob@example.test', id: 'plain-1@test', extraHeaders: [`${FLAG_HEADERS.bypass_anti_spam.toLowerCase()}: forged`, `${FLAG_HEADERS.auth_as}: Partner`] });
    const info = await send(c, 'nancy@example.test', ['bob@example.test'], msg);
    expect(info.response).toBe('250 2.0.0 Ok: queued');
    c.quit();
    const [m, ...more] = deliveredWith('plain-1@test');
    expect(more).toEqual([]);
    expect(m).toMatch(/^Return-Path: <nancy@example\.test>\nReceived: from client\.test \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLSv1\.3 with cipher \S+ \(\d+\/\d+ bits\)\)\n\t\(Authenticated sender: nancy\)\n\tby mail\.test \(mta-policy\) with ESMTPSA id \S+\n\tfor <bob@example\.test>; /);
    expect(m).toContain(`\n${FLAG_HEADERS.auth_as}: Internal\n${FLAG_HEADERS.bypass_anti_spam}: true\nFrom: <nancy@example.test>\n`);
    expect(m).not.toContain('forged');
    expect(m).not.toContain('Partner');
  });

  it('nodemailer, AUTH LOGIN, two messages on one connection', async () => {
    const c = await nodemailer(fx.ports.client);
    await login(c, 'bob', USERS.bob, 'LOGIN');
    for (const id of ['login-1@test', 'login-2@test']) await send(c, 'bob@example.test', ['nancy@example.test', 'ext@elsewhere.test'], message({ from: 'bob@example.test', to: 'nancy@example.test', id }));
    c.quit();
    expect(deliveredWith('login-1@test')).toHaveLength(1);
    expect(deliveredWith('login-2@test')).toHaveLength(1);
  });

  it('implicit TLS on the 465-style connector', async () => {
    const c = await nodemailer(fx.ports.smtps, true);
    await login(c, 'nancy', USERS.nancy);
    await send(c, 'nancy@example.test', ['bob@example.test'], message({ from: 'nancy@example.test', to: 'bob@example.test', id: 'smtps-1@test' }));
    c.quit();
    expect(deliveredWith('smtps-1@test')).toHaveLength(1);
    const { c: raw, greeting } = await RawClient.connect(fx.ports.smtps, { implicitTls: true, ca: fx.ca });
    expect(greeting.code).toBe(220);
    expect((await raw.cmd('EHLO client.test')).lines).toContain('AUTH PLAIN LOGIN');
    expect((await raw.cmd('EHLO client.test')).lines).not.toContain('STARTTLS');
    raw.destroy();
  });

  it('send-as: a MAIL FROM or header From of another user is refused at end of headers; nothing is delivered', async () => {
    // Exchange judges the envelope sender (P1) and the header senders (P2) together, after the headers.
    const c = await submitter('nancy');
    const cases = [
      { mailFrom: 'bob@example.test', from: 'nancy@example.test', id: 'sendas-p1@test' },
      { mailFrom: 'nancy@example.test', from: 'bob@example.test', id: 'sendas-p2@test' },
    ];
    for (const k of cases) {
      expect((await c.cmd(`MAIL FROM:<${k.mailFrom}>`)).code).toBe(250);
      expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
      expect(await c.data(message({ from: k.from, to: 'bob@example.test', id: k.id }))).toMatchObject({ code: 553, text: '5.7.1 Sender address rejected: not owned by user' });
      expect(deliveredWith(k.id)).toEqual([]);
    }
    // The connection carries on with a clean transaction.
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    expect((await c.data(message({ from: 'nancy@example.test', to: 'bob@example.test', id: 'sendas-ok@test' }))).code).toBe(250);
    expect(deliveredWith('sendas-ok@test')).toHaveLength(1);
    c.destroy();
  });

  it('recipient limit and SIZE: the policy answers, oversized mail is not delivered', async () => {
    const c = await submitter('nancy');
    expect((await c.cmd('MAIL FROM:<nancy@example.test> SIZE=100000')).code).toBe(552);
    expect((await c.cmd('MAIL FROM:<nancy@example.test> SIZE=1000')).code).toBe(250);
    for (const r of ['a', 'b', 'c']) expect((await c.cmd(`RCPT TO:<${r}@example.test>`)).code).toBe(250);
    expect(await c.cmd('RCPT TO:<d@example.test>')).toMatchObject({ code: 452, text: '4.5.3 Error: too many recipients' });
    const big = message({ from: 'nancy@example.test', to: 'a@example.test', id: 'big-1@test', body: `${'x'.repeat(900)}\r\n`.repeat(80) });
    expect(await c.data(big)).toMatchObject({ code: 552 });
    expect(deliveredWith('big-1@test')).toEqual([]);
    c.destroy();
  });

  it('bare LF and bare CR in the message are refused and nothing is delivered', async () => {
    const c = await submitter('nancy');
    for (const [id, body] of [['lf-1@test', 'line one\nline two'], ['cr-1@test', 'line one\rline two']] as const) {
      expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
      const r = await c.data(message({ from: 'nancy@example.test', to: 'bob@example.test', id, body }));
      expect(r.code).toBe(550);
      expect(r.text).toMatch(/^5\.5\.2 Error: bare <(LF|CR)> received$/);
      expect(deliveredWith(id)).toEqual([]);
    }
    // LF.LF is no end of data: the message goes on to the real CRLF.CRLF (smuggling attempt).
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    const smuggle = `${message({ from: 'nancy@example.test', to: 'bob@example.test', id: 'smuggle-1@test' })}\n.\nMAIL FROM:<x@evil.test>\r\n`;
    expect((await c.data(smuggle)).code).toBe(550);
    expect(deliveredWith('smuggle-1@test')).toEqual([]);
    c.destroy();
  });

  it('MAIL without AUTH after TLS is refused; wrong passwords are tarpitted, then the connection is closed', async () => {
    const c = await submitter();
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(530);
    const t0 = Date.now();
    expect(await c.authPlain('nancy', 'wrong')).toMatchObject({ code: 535 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(await c.authPlain('nobody', 'wrong')).toMatchObject({ code: 535 });
    // max_logon_failures: 2 — the third failure disconnects (Exchange semantics).
    const third = await c.authPlain('nancy', 'wrong-again');
    expect(third.code).toBe(421);
    await c.closed;
  });
});

describe('relay per connector', () => {
  it('the inbound connector takes mail for accepted domains only; the relay connector relays anywhere', async () => {
    const { c } = await RawClient.connect(fx.ports.inbound);
    await c.cmd('EHLO peer.test');
    expect((await c.cmd('MAIL FROM:<someone@remote.test>')).code).toBe(250);
    expect(await c.cmd('RCPT TO:<someone@elsewhere.test>')).toMatchObject({ code: 554, text: '5.7.1 Relay access denied' });
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    expect((await c.data(message({ from: 'someone@remote.test', to: 'bob@example.test', id: 'inbound-1@test' }))).code).toBe(250);
    c.destroy();
    const { c: r } = await RawClient.connect(fx.ports.relay);
    await r.cmd('EHLO scanner.test');
    expect((await r.cmd('MAIL FROM:<scanner@example.test>')).code).toBe(250);
    expect((await r.cmd('RCPT TO:<someone@elsewhere.test>')).code).toBe(250);
    expect((await r.data(message({ from: 'scanner@example.test', to: 'someone@elsewhere.test', id: 'relay-1@test' }))).code).toBe(250);
    r.destroy();
    expect(deliveredWith('inbound-1@test')).toHaveLength(1);
    expect(deliveredWith('relay-1@test')).toHaveLength(1);
  });
});
