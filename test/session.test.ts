/**
 * The session model (engine/session.ts) on the real policy.wasm and the test configuration:
 * what carries between stages, sequence rules, counters, logon failures, MTA-performed AUTH,
 * reload, and the decision log.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryCounters, type Counters } from '../engine/counters.js';
import { Engine } from '../engine/engine.js';
import type { Decision } from '../engine/types.js';
import { parseConfig } from '../engine/config/load.js';
import { fixtureConfig } from './helpers/engine.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ config: fixtureConfig() });
});

const INTERNET = { local: '192.0.2.99:25', remote: '198.51.100.7' } as const;
const CLIENT = { local: '192.0.2.99:587', remote: '198.51.100.7' } as const;
const TLS = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };
const HEADERS = [['From', 'Someone <someone@gmail.test>'], ['Subject', 'hi']] as const;

const brief = (d: Decision): string => `${d.stage} ${d.decision} ${d.reason}${d.error === undefined ? '' : ` ${d.error.code}`}`;

describe('a session carries state from stage to stage', () => {
  it('runs a whole message and counts recipients', async () => {
    const s = engine.session(INTERNET);
    expect(brief(await s.connect())).toBe('connect continue ok_connect');
    expect(s.connector).toBe('Internet');
    expect(brief(await s.helo('mx.example.test'))).toBe('ehlo continue ok_ehlo');
    expect(brief(await s.mail('<someone@gmail.test>'))).toBe('mail continue ok_mail');
    expect(s.inTransaction).toBe(true);
    expect(brief(await s.rcpt('<a@contoso.test>'))).toBe('rcpt continue ok_rcpt');
    expect(brief(await s.rcpt('<x@victim.test>'))).toBe('rcpt reject relay_denied');
    expect(s.acceptedRecipients).toBe(1);
    expect(brief(await s.headers(HEADERS))).toBe('headers continue ok_headers');
    const eom = await s.eom(500);
    expect(brief(eom)).toBe('eom accept ok_eom');
    expect(s.inTransaction).toBe(false);
    expect(eom.add_headers[0]).toEqual({ name: 'X-MTA-Policy-Auth-As', value: 'Anonymous' });
    await s.messageAccepted();
    expect(s.messages).toBe(1);
    await s.close();
  });

  it('supports several transactions, RSET and EHLO resets', async () => {
    const s = engine.session(INTERNET);
    await s.connect();
    await s.helo('mx.example.test');
    await s.mail('<a@gmail.test>');
    await s.rcpt('<a@contoso.test>');
    s.rset();
    expect(s.inTransaction).toBe(false);
    expect(brief(await s.rcpt('<a@contoso.test>'))).toBe('rcpt tempfail engine_error ENGINE_SESSION_SEQUENCE');
    await s.mail('<b@gmail.test>');
    await s.rcpt('<b@contoso.test>');
    await s.helo('mx.example.test'); // EHLO ends the transaction (RFC 5321 §4.1.4)
    expect(s.inTransaction).toBe(false);
    await s.mail('<c@gmail.test>');
    await s.rcpt('<c@contoso.test>');
    await s.headers(HEADERS);
    expect((await s.eom(500)).decision).toBe('accept');
    await s.mail('<d@gmail.test>');
    expect(s.acceptedRecipients).toBe(0);
    await s.close();
  });

  it('needs an accepted recipient before end of headers, and end of headers before end of message', async () => {
    const s = engine.session(INTERNET);
    await s.connect();
    await s.mail('<a@gmail.test>');
    expect(brief(await s.headers(HEADERS))).toBe('headers tempfail engine_error ENGINE_SESSION_SEQUENCE');
    await s.rcpt('<a@contoso.test>');
    expect(brief(await s.eom(100))).toBe('eom tempfail engine_error ENGINE_SESSION_SEQUENCE');
  });

  it('refuses everything before CONNECT, after a disconnect, and after close', async () => {
    const early = engine.session(INTERNET);
    expect((await early.mail('<a@gmail.test>')).error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    expect((await early.connect()).decision).toBe('continue');
    expect((await early.connect()).error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    await early.close();
    expect((await early.helo('x')).error?.code).toBe('ENGINE_SESSION_SEQUENCE');

    // Client connector: MAIL without AUTH disconnects (Exchange 530 5.7.1).
    const s = engine.session({ ...CLIENT, tls: TLS });
    await s.connect();
    const mail = await s.mail('<alice@contoso.test>');
    expect(mail).toMatchObject({ decision: 'disconnect', reason: 'submit_denied_anonymous' });
    const after = await s.mail('<alice@contoso.test>');
    expect(after).toMatchObject({ decision: 'tempfail', error: { code: 'ENGINE_SESSION_SEQUENCE' } });
  });

  it('authenticates only on continue, once, and never during a transaction', async () => {
    const s = engine.session({ ...CLIENT, tls: TLS });
    await s.connect();
    await s.helo('laptop');
    expect(brief(await s.auth({ mechanism: 'PLAIN', user: 'alice', result: 'failure' }))).toBe('auth reject auth_failed');
    expect(s.user).toBeNull();
    expect(s.logonFailures).toBe(1);
    expect(brief(await s.auth({ mechanism: 'PLAIN', user: 'alice' }))).toBe('auth continue ok_auth');
    expect(s.user).toBe('alice');
    expect((await s.auth({ mechanism: 'PLAIN', user: 'bob' })).error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    expect(brief(await s.mail('<alice@contoso.test>'))).toBe('mail continue ok_mail');
    const d = await s.rcpt('<someone@gmail.test>');
    expect(d).toMatchObject({ decision: 'continue', principals: ['authenticated', 'group:sales', 'user:alice'] });
  });

  it('counts logon failures per connection and disconnects after max_logon_failures', async () => {
    const s = engine.session({ ...CLIENT, tls: TLS });
    await s.connect();
    const kinds: string[] = [];
    for (let i = 0; i < 4; i++) kinds.push((await s.auth({ mechanism: 'LOGIN', user: 'alice', result: 'failure' })).decision);
    expect(kinds).toEqual(['reject', 'reject', 'reject', 'disconnect']);
    expect(s.logonFailures).toBe(4);
    // A second connection starts again at zero.
    const t = engine.session({ ...CLIENT, tls: TLS });
    await t.connect();
    expect((await t.auth({ mechanism: 'LOGIN', user: 'alice', result: 'failure' })).decision).toBe('reject');
  });

  it('discards cleartext knowledge at STARTTLS (RFC 3207 §4.2)', async () => {
    const s = engine.session(CLIENT);
    await s.connect();
    const before = await s.helo('laptop');
    expect(before.advertise).toMatchObject({ starttls: true, auth: [] });
    expect(brief(await s.auth({ mechanism: 'PLAIN', user: 'alice' }))).toBe('auth reject auth_requires_tls');
    s.starttls(TLS);
    const after = await s.helo('laptop');
    expect(after.advertise).toMatchObject({ starttls: false, auth: ['PLAIN', 'LOGIN'] });
    expect(brief(await s.auth({ mechanism: 'PLAIN', user: 'alice' }))).toBe('auth continue ok_auth');
  });
});

describe('AUTH run by the MTA (milter, policy service)', () => {
  it('counts where the connector accepts authentication, whatever the mechanism', async () => {
    const s = engine.session({ ...CLIENT, tls: TLS });
    await s.connect();
    s.mtaAuthenticated({ mechanism: 'CRAM-MD5', user: 'alice' });
    expect(await s.mail('<alice@contoso.test>')).toMatchObject({ decision: 'continue', principals: ['authenticated', 'group:sales', 'user:alice'] });
  });

  it('is refused at MAIL without TLS on a BasicAuthRequireTLS connector, and the reason says so', async () => {
    const s = engine.session(CLIENT);
    await s.connect();
    s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'alice' });
    expect(await s.mail('<alice@contoso.test>')).toMatchObject({ decision: 'reject', reason: 'mta_auth_requires_tls', reply: { code: 530 } });
  });

  it('is refused at MAIL where the connector offers no authentication', async () => {
    const s = engine.session(INTERNET);
    await s.connect();
    s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'alice' });
    expect(await s.mail('<alice@contoso.test>')).toMatchObject({ decision: 'reject', reason: 'mta_auth_not_enabled' });
  });
});

describe('counters', () => {
  it('fills the connection counts per connector and releases them at close', async () => {
    const counters = new MemoryCounters();
    const strict = { local: '192.0.2.99:2525', remote: '198.51.100.8' };
    const open = [];
    for (let i = 0; i < 3; i++) {
      const s = engine.session(strict, { counters });
      expect((await s.connect()).decision).toBe('continue');
      open.push(s);
    }
    // Strict Internet: max_inbound_connection_per_source 3, so the fourth is refused…
    const fourth = engine.session(strict, { counters });
    expect(await fourth.connect()).toMatchObject({ decision: 'disconnect', reason: 'connection_limit_source' });
    await fourth.close();
    // …another client is not, and closing one frees a place.
    expect((await engine.session({ ...strict, remote: '198.51.100.9' }, { counters }).connect()).decision).toBe('continue');
    await open[0]?.close();
    await open[0]?.close(); // idempotent
    expect((await engine.session(strict, { counters }).connect()).decision).toBe('continue');
  });

  it('limits the message rate per connector and rate source, counting only delivered messages', async () => {
    const config = parseConfig(
      [
        'server: { fqdn: mx.test }',
        'accepted_domains: [{ domain: contoso.test }]',
        'connectors:',
        '  - { name: Rated, usage: internet, bindings: ["0.0.0.0:25"], message_rate_limit: 2, message_rate_source: ip_address }',
      ].join('\n'),
      'rate.yaml',
    );
    const rated = await Engine.create({ config });
    const counters = new MemoryCounters();
    const send = async (deliver: boolean): Promise<string> => {
      const s = rated.session({ local: '192.0.2.1:25', remote: '198.51.100.7' }, { counters });
      await s.connect();
      const mail = await s.mail('<a@gmail.test>');
      if (mail.decision !== 'continue') return mail.reason;
      await s.rcpt('<a@contoso.test>');
      await s.headers(HEADERS);
      const eom = await s.eom(500);
      if (deliver) await s.messageAccepted();
      await s.close();
      return eom.reason;
    };
    expect(await send(false)).toBe('ok_eom'); // not delivered: not counted
    expect(await send(true)).toBe('ok_eom');
    expect(await send(true)).toBe('ok_eom');
    expect(await send(true)).toBe('rate_limit');
    expect(await counters.messagesLastMinute('Rated\0ip:198.51.100.7')).toBe(2);
  });

  it('a counter store that fails is a tempfail, never an accept', async () => {
    const broken: Counters = {
      openConnection: () => Promise.reject(new Error('redis down')),
      closeConnection: () => undefined,
      messagesLastMinute: () => 0,
      recordMessage: () => undefined,
    };
    const s = engine.session(INTERNET, { counters: broken });
    expect(await s.connect()).toMatchObject({ decision: 'disconnect', reply: { code: 421, enhanced: '4.3.0' }, error: { code: 'ENGINE_EVAL_FAILED' } });
  });
});

describe('reload and logging', () => {
  it('swaps the configuration atomically; open sessions keep their snapshot', async () => {
    const e = await Engine.create({ config: fixtureConfig() });
    const old = e.session(INTERNET);
    await old.connect();
    const narrower = parseConfig('server: { fqdn: mx.test }\nconnectors:\n  - { name: Only, usage: internet, bindings: ["0.0.0.0:2525"] }\n', 'narrow.yaml');
    await e.reload(narrower);
    expect((await e.session(INTERNET).connect()).reason).toBe('no_connector');
    // The session opened before the reload still decides with the configuration it began with.
    expect((await old.mail('<a@gmail.test>')).decision).toBe('continue');
    expect(old.connector).toBe('Internet');
  });

  it('logs one line per decision with id, stage, connector, decision, reason and duration, and failures with their cause', async () => {
    const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
    const logger = {
      info: (obj: object, msg?: string) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, ...(msg === undefined ? {} : { msg }) }),
      warn: (obj: object, msg?: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, ...(msg === undefined ? {} : { msg }) }),
      error: (obj: object, msg?: string) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, ...(msg === undefined ? {} : { msg }) }),
    };
    const e = await Engine.create({ config: fixtureConfig(), logger });
    const s = e.session({ ...CLIENT, tls: TLS }, { logBindings: { conn: 'c1', adapter: 'test' } });
    await s.connect();
    await s.auth({ mechanism: 'PLAIN', user: 'alice', result: 'failure' });
    await s.mail('<alice@contoso.test>');
    e.decide('connect', { local: 'nonsense', remote: '198.51.100.7' });
    expect(lines[0]).toMatchObject({ level: 'info', obj: { conn: 'c1', adapter: 'test', stage: 'connect', connector: 'Client', verdict: 'continue', reason: 'ok_connect' } });
    expect(lines[0]?.obj['decision']).toMatch(/^[0-9a-f]{8}-/);
    expect(typeof lines[0]?.obj['ms']).toBe('number');
    const failure = lines.at(-1);
    expect(failure).toMatchObject({ level: 'error', obj: { stage: 'connect', err: { code: 'ENGINE_INPUT_INVALID' } } });
    // Nothing secret: the log holds no password, and AUTH lines carry only the decision.
    expect(JSON.stringify(lines)).not.toMatch(/password|secret/i);
  });
});
