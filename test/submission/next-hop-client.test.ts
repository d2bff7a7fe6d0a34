import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NextHopClient, type NextHopClientOptions } from '../../adapters/submission/next-hop-client.js';
import { freePort, makeRunDir, makeSelfSignedCert, smtpSink, startDovecot, type DovecotInstance, type SmtpSink, type TlsFiles } from '../peers/harness.js';

const MSG = 'From: a@example.test\r\nSubject: dots\r\nMessage-ID: <m1@example.test>\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n';
const files = (d: string): string[] => {
  try {
    return readdirSync(d).filter((f) => !f.startsWith('.'));
  } catch {
    return [];
  }
};
const dumps = (sink: SmtpSink): string[] => {
  const dir = sink.dumpDir;
  if (dir === undefined) throw new Error('smtp-sink was started without capture');
  return files(dir).map((f) => readFileSync(join(dir, f), 'utf8'));
};
const client = (port: number, extra: Partial<NextHopClientOptions> = {}): NextHopClient =>
  new NextHopClient({ hop: { kind: 'smtp', host: '127.0.0.1', port, implicitTls: false }, heloName: 'mtap.test', commandTimeoutMs: 3000, ...extra });

async function send(c: NextHopClient, rcpts: string[], msg: string | PassThrough = MSG) {
  const mail = await c.mail('sender@example.test', { size: 100, body: '8BITMIME' });
  const rcpt = [];
  for (const r of rcpts) rcpt.push(await c.rcpt(r, { notify: 'SUCCESS,FAILURE' }));
  const data = await c.data(typeof msg === 'string' ? [msg.slice(0, 50), msg.slice(50)] : msg);
  return { mail, rcpt, data };
}

describe('against smtp-sink', () => {
  it('relays MAIL with SIZE/BODY, each RCPT, and the dot-stuffed message; reuses the connection', async () => {
    const sink = await smtpSink({ args: ['-n', '1'] }); // exits after one session: reuse is required
    const c = client(sink.port);
    try {
      const a = await send(c, ['one@example.test', 'two@example.test']);
      expect(a.mail).toMatchObject({ code: 250, enhanced: '2.1.0', source: 'peer' });
      expect(a.rcpt.map((r) => r.code)).toEqual([250, 250]);
      expect(a.data.reply).toMatchObject({ code: 250, enhanced: '2.0.0' });
      expect(a.data.perRecipient.map((p) => p.recipient)).toEqual(['one@example.test', 'two@example.test']);
      const b = await send(c, ['three@example.test']);
      expect(b.data.reply.code).toBe(250);
      await c.close();
      const d = dumps(sink);
      expect(d).toHaveLength(2);
      const first = d.find((x) => x.includes('<one@example.test>')) ?? '';
      // smtp-sink offers no SIZE, so none is sent (the smarthost test below sees it).
      expect(first).toContain('X-Mail-Args: <sender@example.test> BODY=8BITMIME\n');
      expect(first).toContain('X-Rcpt-Args: <two@example.test> NOTIFY=SUCCESS,FAILURE');
      expect(first).toContain(MSG.replace(/\r\n/g, '\n'));
    } finally {
      await sink.stop();
    }
  });

  it.each([
    [['-r', 'RCPT'], 'rcpt', 450, '4.3.0'],
    [['-f', 'RCPT'], 'rcpt', 500, '5.3.0'],
    [['-f', 'MAIL'], 'mail', 500, '5.3.0'],
    [['-r', '.'], 'data', 450, '4.3.0'],
    [['-f', '.'], 'data', 500, '5.3.0'],
    [['-f', 'DATA'], 'data', 500, '5.3.0'],
  ] as const)('mirrors smtp-sink %j at %s', async (args, stage, code, enhanced) => {
    const sink = await smtpSink({ args: [...args] });
    const c = client(sink.port);
    try {
      const mail = await c.mail('s@example.test');
      if (stage === 'mail') return expect(mail).toMatchObject({ code, enhanced, source: 'peer' });
      const rcpt = await c.rcpt('r@example.test');
      if (stage === 'rcpt') return expect(rcpt).toMatchObject({ code, enhanced, source: 'peer' });
      expect((await c.data([MSG])).reply).toMatchObject({ code, enhanced, source: 'peer' });
      // The connection is still good for the next transaction (RSET sent where needed).
      expect((await c.mail('s2@example.test')).code).toBe(250);
    } finally {
      await c.close();
      await sink.stop();
    }
  });

  it.each([
    [['-q', 'RCPT'], 'rcpt'],
    [['-q', '.'], 'data'],
    [['-q', 'DATA'], 'data'],
    [['-Q', 'MAIL'], 'mail-421'],
  ] as const)('smtp-sink %j (hangs up) → 4xx', async (args, stage) => {
    const sink = await smtpSink({ args: [...args] });
    const c = client(sink.port);
    try {
      const mail = await c.mail('s@example.test');
      if (stage === 'mail-421') return expect(mail).toMatchObject({ code: 421, source: 'peer' });
      const rcpt = await c.rcpt('r@example.test');
      if (stage === 'rcpt') return expect(rcpt).toMatchObject({ code: 451, enhanced: '4.4.2', source: 'local' });
      expect((await c.data([MSG])).reply).toMatchObject({ code: 451, enhanced: '4.4.2', source: 'local' });
    } finally {
      await c.close();
      await sink.stop();
    }
  });

  it('next hop down → 451 4.4.1; slow beyond the command timeout → 451 4.4.2', async () => {
    const c = client(await freePort());
    expect(await c.mail('s@example.test')).toMatchObject({ code: 451, enhanced: '4.4.1', source: 'local', detail: expect.stringMatching(/ECONNREFUSED/) });
    const sink = await smtpSink({ args: ['-W', 'RCPT:2'] });
    const slow = client(sink.port, { commandTimeoutMs: 500 });
    try {
      expect((await slow.mail('s@example.test')).code).toBe(250);
      expect(await slow.rcpt('r@example.test')).toMatchObject({ code: 451, enhanced: '4.4.2', detail: expect.stringMatching(/timed out/) });
    } finally {
      await slow.close();
      await sink.stop();
    }
  });

  it('killed mid-DATA → 451 and no message; 8BITMIME/SMTPUTF8 it lacks are refused locally', async () => {
    const sink = await smtpSink({ args: ['-8'] });
    const c = client(sink.port);
    try {
      expect(await c.mail('s@example.test', { body: '8BITMIME' })).toMatchObject({ code: 554, enhanced: '5.6.3', source: 'local' });
      expect(await c.mail('s@example.test', { smtpUtf8: true })).toMatchObject({ code: 553, enhanced: '5.6.7', source: 'local' });
      expect((await c.mail('s@example.test', { body: '7BIT' })).code).toBe(250);
      expect((await c.rcpt('r@example.test')).code).toBe(250);
      const src = new PassThrough();
      const outcome = c.data(src);
      src.write('Subject: big\r\n\r\n');
      for (let i = 0; i < 50; i++) src.write(`${'x'.repeat(998)}\r\n`);
      await new Promise((r) => setTimeout(r, 100));
      sink.child.kill('SIGKILL');
      for (let i = 0; i < 2000 && !src.writableNeedDrain; i++) src.write(`${'y'.repeat(998)}\r\n`);
      src.end();
      // Not acknowledged: the client keeps the message and retries (smtp-sink's partial capture file is no delivery).
      expect((await outcome).reply).toMatchObject({ code: 451, enhanced: '4.4.2', source: 'local' });
    } finally {
      await c.close();
      await sink.stop();
    }
  });
});

describe('against a private Dovecot LMTP', () => {
  let dovecot: DovecotInstance;
  let certs: TlsFiles;
  let certDir: string;
  beforeAll(async () => {
    certDir = await makeRunDir('certs');
    certs = await makeSelfSignedCert(certDir);
    dovecot = await startDovecot({ users: [{ name: 'alice@example.test', password: 'x' }, { name: 'carol@example.test', password: 'x' }], ssl: certs, authFailureDelay: '0' });
  });
  afterAll(async () => {
    await dovecot?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });
  const lmtpSocket = (): string => dovecot.lmtpSocket ?? '';
  const lmtpPort = (): number => dovecot.lmtpPort ?? 0;
  const inbox = (u: string): string[] => files(join(dovecot.maildir(u), 'new')).map((f) => readFileSync(join(dovecot.maildir(u), 'new', f), 'utf8'));

  it('unix socket: RCPT replies mirrored per recipient, one DATA reply per accepted recipient, bytes intact', async () => {
    const c = new NextHopClient({ hop: { kind: 'lmtp-unix', path: lmtpSocket() }, heloName: 'mtap.test' });
    try {
      const r = await send(c, ['alice@example.test', 'bob@example.test', 'carol@example.test']);
      expect(r.rcpt.map((x) => [x.code, x.enhanced])).toEqual([[250, '2.1.5'], [550, '5.1.1'], [250, '2.1.5']]);
      expect(r.data.reply).toMatchObject({ code: 250, enhanced: '2.0.0', source: 'peer' });
      expect(r.data.perRecipient.map((p) => [p.recipient, p.reply.code])).toEqual([['alice@example.test', 250], ['carol@example.test', 250]]);
      expect(r.data.perRecipient[0]?.reply.text).toContain('<alice@example.test>');
      for (const u of ['alice@example.test', 'carol@example.test']) expect(inbox(u).some((m) => m.endsWith(MSG.replace(/\r\n/g, '\n')))).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('a client that vanishes mid-DATA: no final dot, nothing delivered, 451', async () => {
    const c = new NextHopClient({ hop: { kind: 'lmtp', host: '127.0.0.1', port: lmtpPort() }, heloName: 'mtap.test', tls: { starttls: 'never' } });
    const before = inbox('alice@example.test').length;
    expect((await c.mail('s@example.test')).code).toBe(250);
    expect((await c.rcpt('alice@example.test')).code).toBe(250);
    const src = new PassThrough();
    const outcome = c.data(src);
    src.write('Subject: truncated\r\n\r\nhalf');
    await new Promise((r) => setTimeout(r, 50));
    src.destroy(new Error('client connection closed'));
    expect((await outcome).reply).toMatchObject({ code: 451, enhanced: '4.4.2', detail: expect.stringMatching(/client connection closed/) });
    await new Promise((r) => setTimeout(r, 200));
    expect(inbox('alice@example.test')).toHaveLength(before);
  });

  it('STARTTLS with certificate verification: trusted CA delivers; unknown CA or wrong name is 451 4.4.1', async () => {
    const hop = { kind: 'lmtp', host: '127.0.0.1', port: lmtpPort() } as const;
    const ca = readFileSync(certs.cert);
    const ok = new NextHopClient({ hop, heloName: 'mtap.test', tls: { starttls: 'required', ca } });
    try {
      expect((await ok.mail('s@example.test')).code).toBe(250);
      expect(ok.extensions.has('STARTTLS')).toBe(false); // the post-TLS LHLO no longer offers it
      expect((await ok.rcpt('carol@example.test')).code).toBe(250);
      expect((await ok.data([MSG])).reply.code).toBe(250);
    } finally {
      await ok.close();
    }
    const untrusted = new NextHopClient({ hop, heloName: 'mtap.test', tls: { starttls: 'opportunistic' } });
    expect(await untrusted.mail('s@example.test')).toMatchObject({ code: 451, enhanced: '4.4.1', detail: expect.stringMatching(/self-signed|certificate/i) });
    const wrongName = new NextHopClient({ hop, heloName: 'mtap.test', tls: { starttls: 'required', ca, servername: 'mx.example.test' } });
    expect(await wrongName.mail('s@example.test')).toMatchObject({ code: 451, enhanced: '4.4.1', detail: expect.stringMatching(/altnames|mx\.example\.test/) });
    const noTls = new NextHopClient({ hop: { kind: 'lmtp-unix', path: lmtpSocket() }, heloName: 'mtap.test', auth: { username: 'u', password: 'p' } });
    expect(await noTls.mail('s@example.test')).toMatchObject({ code: 451, detail: expect.stringMatching(/not TLS; credentials not sent/) });
  });
});

describe('AUTH towards a smarthost (smtp-server with STARTTLS)', () => {
  it('authenticates after STARTTLS; a refused login is 451 4.4.1, not the smarthost\'s 535', async () => {
    const dir = await makeRunDir('smarthost');
    const certs = await makeSelfSignedCert(dir);
    const seen: string[] = [];
    const mailArgs: unknown[] = [];
    const server = new SMTPServer({
      key: readFileSync(certs.key),
      cert: readFileSync(certs.cert),
      authMethods: ['PLAIN', 'LOGIN'],
      disableReverseLookup: true,
      onAuth(auth, _s, cb) {
        seen.push(`${auth.method}:${auth.username}`);
        if (auth.username === 'relay' && auth.password === 'relay pw') cb(null, { user: 'relay' });
        else cb(new Error('Invalid credentials'));
      },
      size: 1_000_000,
      onMailFrom(addr, _s, cb) {
        mailArgs.push(addr.args);
        cb();
      },
      onData(stream, _s, cb) {
        stream.resume();
        stream.on('end', () => cb(null, '2.0.0 queued as X1'));
      },
    });
    server.on('error', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.server.address() as { port: number }).port;
    const opts = { tls: { starttls: 'required' as const, ca: readFileSync(certs.cert) } };
    try {
      const good = client(port, { ...opts, auth: { username: 'relay', password: 'relay pw' } });
      expect((await good.mail('s@example.test', { size: 1234, body: '8BITMIME', smtpUtf8: true })).code).toBe(250);
      expect(mailArgs).toEqual([{ SIZE: '1234', BODY: '8BITMIME', SMTPUTF8: true }]);
      expect((await good.rcpt('far@example.org')).code).toBe(250);
      expect((await good.data([MSG])).reply).toMatchObject({ code: 250, text: 'queued as X1' });
      await good.close();
      const bad = client(port, { ...opts, auth: { username: 'relay', password: 'wrong' } });
      const r = await bad.mail('s@example.test');
      expect(r).toMatchObject({ code: 451, enhanced: '4.4.1', source: 'local', detail: expect.stringMatching(/535/) });
      expect(JSON.stringify(r)).not.toContain('wrong');
      expect(seen).toEqual(['PLAIN:relay', 'PLAIN:relay']);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
