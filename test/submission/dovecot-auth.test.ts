import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DovecotAuthClient, parseDovecotAuthAddress, type DovecotAuthRequest } from '../../adapters/submission/dovecot-auth.js';
import { dovecotHash, smtpSink, startDovecot, type DovecotInstance, type DovecotUser } from '../peers/harness.js';

const users: DovecotUser[] = [
  { name: 'alice@example.test', password: 'alice pw' },
  { name: 'bob@example.test', hash: await dovecotHash('bob pw', 'BLF-CRYPT') },
  { name: 'carol@example.test', hash: await dovecotHash('carol pw', 'ARGON2ID') },
  { name: 'dave@example.test', password: 'dave pw', extraFields: 'nologin=y reason=Account_disabled' },
];
/** Dovecot delays every failure by 2 s by default; the tests ask for a delay where they need one. */
const start = (extra: { mechanisms?: string[]; authFailureDelay?: string } = {}): Promise<DovecotInstance> =>
  startDovecot({ users, authInet: true, authFailureDelay: '0', ...extra });
const inetPort = (d: DovecotInstance): number => {
  if (d.authPort === undefined) throw new Error('Dovecot was started without its inet auth listener');
  return d.authPort;
};
let ipSeq = 0;
/** Each failing request from its own client IP, so Dovecot's per-IP penalty never slows the suite. */
const req = (username: string, password: string, extra: Partial<DovecotAuthRequest> = {}): DovecotAuthRequest => ({
  username,
  password,
  remoteIp: `127.0.${Math.floor(++ipSeq / 250)}.${(ipSeq % 250) + 1}`,
  remotePort: 40000,
  localIp: '127.0.0.1',
  localPort: 587,
  secured: true,
  session: `s\t${ipSeq}`,
  ...extra,
});

let dovecot: DovecotInstance;
beforeAll(async () => {
  dovecot = await start();
});
afterAll(async () => {
  await dovecot?.stop();
});

describe('parseDovecotAuthAddress', () => {
  it.each([
    ['unix:/run/dovecot/auth-client', { kind: 'unix', path: '/run/dovecot/auth-client' }],
    ['inet:127.0.0.1:12345', { kind: 'inet', host: '127.0.0.1', port: 12345 }],
    ['inet:[::1]:12345', { kind: 'inet', host: '::1', port: 12345 }],
    ['inet:auth.example.test:1', { kind: 'inet', host: 'auth.example.test', port: 1 }],
  ])('%s', (text, want) => expect(parseDovecotAuthAddress(text)).toEqual(want));
  it.each(['unix:', 'inet:127.0.0.1', 'inet:127.0.0.1:0', 'inet:127.0.0.1:70000', 'inet:[nope]:1', 'inet:::1:25', '/run/x', 'tcp:1.2.3.4:5'])(
    'refuses %s',
    (text) => expect(parseDovecotAuthAddress(text).kind).toBe('invalid'),
  );
});

describe.each(['unix', 'inet'] as const)('against a real Dovecot over %s', (kind) => {
  let client: DovecotAuthClient;
  beforeAll(() => {
    client = new DovecotAuthClient({
      address: kind === 'unix' ? { kind, path: dovecot.authSocket } : { kind, host: '127.0.0.1', port: inetPort(dovecot) },
    });
  });
  afterAll(() => client.close());

  it('logs in with SHA512-CRYPT, BLF-CRYPT and ARGON2ID users', async () => {
    expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toEqual({ result: 'success', user: 'alice@example.test' });
    expect(await client.authenticate(req('bob@example.test', 'bob pw'))).toEqual({ result: 'success', user: 'bob@example.test' });
    expect(await client.authenticate(req('carol@example.test', 'carol pw'))).toEqual({ result: 'success', user: 'carol@example.test' });
    expect(client.mechanisms).toEqual(['PLAIN', 'LOGIN']);
  });

  it('wrong password and unknown user are failures', async () => {
    expect(await client.authenticate(req('alice@example.test', 'wrong'))).toMatchObject({ result: 'failure' });
    expect(await client.authenticate(req('nobody@example.test', 'alice pw'))).toMatchObject({ result: 'failure' });
  });

  it('an OK carrying nologin is a failure with Dovecot\'s reason', async () => {
    expect(await client.authenticate(req('dave@example.test', 'dave pw'))).toEqual({ result: 'failure', reason: 'Account_disabled' });
  });

  it('multiplexes: 30 concurrent requests each get their own answer', async () => {
    const cases = Array.from({ length: 30 }, (_, i) => {
      const u = users[i % 3] ?? users[0];
      const good = i % 2 === 0;
      return { u: u?.name ?? '', good, p: good ? `${(u?.name ?? '').split('@')[0]} pw` : `bad ${i}` };
    });
    const results = await Promise.all(cases.map((c) => client.authenticate(req(c.u, c.p))));
    expect(results.map((r) => r.result)).toEqual(cases.map((c) => (c.good ? 'success' : 'failure')));
    expect(results.map((r) => (r.result === 'success' ? r.user : ''))).toEqual(cases.map((c) => (c.good ? c.u : '')));
  });

  it('refuses empty, NUL-carrying and over-long credentials without asking', async () => {
    expect(await client.authenticate(req('alice@example.test', ''))).toMatchObject({ result: 'failure' });
    expect(await client.authenticate(req('', 'x'))).toMatchObject({ result: 'failure' });
    expect(await client.authenticate(req('alice@example.test\0x', 'alice pw'))).toMatchObject({ result: 'failure' });
    expect(await client.authenticate(req('a'.repeat(256), 'x'))).toMatchObject({ result: 'failure' });
    expect(await client.authenticate(req('alice@example.test', 'alice pw', { remoteIp: 'not-an-ip' }))).toMatchObject({ result: 'tempfail' });
  });
});

describe('LOGIN-only Dovecot', () => {
  it('uses LOGIN when PLAIN is not offered', async () => {
    const d = await start({ mechanisms: ['login'] });
    const client = new DovecotAuthClient({ address: { kind: 'unix', path: d.authSocket } });
    try {
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toEqual({ result: 'success', user: 'alice@example.test' });
      expect(client.mechanisms).toEqual(['LOGIN']);
      expect(await client.authenticate(req('alice@example.test', 'nope'))).toMatchObject({ result: 'failure' });
    } finally {
      client.close();
      await d.stop();
    }
  });
});

describe('Dovecot down, hung or restarted', () => {
  it('killed mid-request → tempfail; down → tempfail; restarted → logs in again on a new connection', async () => {
    const d = await start({ authFailureDelay: '3s' });
    const client = new DovecotAuthClient({ address: { kind: 'inet', host: '127.0.0.1', port: inetPort(d) } });
    try {
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toMatchObject({ result: 'success' });
      // A wrong password is held for auth_failure_delay: kill the auth process while it is in flight.
      // (SIGKILL: on a graceful stop Dovecot answers held failures before it goes.)
      const inFlight = client.authenticate(req('alice@example.test', 'wrong'));
      await new Promise((r) => setTimeout(r, 300));
      const pids = d.childPids('auth');
      expect(pids.length).toBeGreaterThan(0);
      for (const p of pids) process.kill(p, 'SIGKILL');
      expect(await inFlight).toEqual({ result: 'tempfail', reason: 'connection to Dovecot auth lost' });
      // The master starts a new auth process; the client reconnects on its own.
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toMatchObject({ result: 'success' });
      await d.halt();
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toMatchObject({ result: 'tempfail', reason: expect.stringMatching(/ECONNREFUSED/) });
      await d.restart();
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toEqual({ result: 'success', user: 'alice@example.test' });
    } finally {
      client.close();
      await d.stop();
    }
  });

  it('a stopped (SIGSTOP) auth process → request timeout → tempfail, then recovers', async () => {
    const client = new DovecotAuthClient({ address: { kind: 'unix', path: dovecot.authSocket }, requestTimeoutMs: 500 });
    try {
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toMatchObject({ result: 'success' });
      const pids = dovecot.childPids('auth');
      expect(pids.length).toBeGreaterThan(0);
      for (const p of pids) process.kill(p, 'SIGSTOP');
      try {
        expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toEqual({ result: 'tempfail', reason: 'Dovecot auth did not answer in time' });
      } finally {
        for (const p of pids) process.kill(p, 'SIGCONT');
      }
      expect(await client.authenticate(req('bob@example.test', 'bob pw'))).toMatchObject({ result: 'success' });
    } finally {
      client.close();
    }
  });

  it('a peer that never completes the handshake (smtp-sink) → tempfail', async () => {
    const sink = await smtpSink();
    const client = new DovecotAuthClient({ address: { kind: 'inet', host: '127.0.0.1', port: sink.port }, handshakeTimeoutMs: 300 });
    try {
      expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toMatchObject({ result: 'tempfail', reason: expect.stringMatching(/handshake timed out/) });
    } finally {
      client.close();
      await sink.stop();
    }
  });

  it('a missing socket → tempfail; a closed client → tempfail', async () => {
    const client = new DovecotAuthClient({ address: { kind: 'unix', path: `${dovecot.dir}/no-such-socket` } });
    expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toMatchObject({ result: 'tempfail', reason: expect.stringMatching(/ENOENT/) });
    client.close();
    expect(await client.authenticate(req('alice@example.test', 'alice pw'))).toEqual({ result: 'tempfail', reason: 'auth client closed' });
  });
});
