import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultBundleDir, readBundle } from '../engine/bundle.js';
import { parseDecision } from '../engine/decision.js';
import { Engine } from '../engine/engine.js';
import type { Facts, FactsFor, Stage } from '../engine/types.js';
import { fixtureConfig, fixtureEngine } from './helpers/engine.js';

let engine: Engine;
beforeAll(async () => {
  engine = await fixtureEngine();
});

const internet = { local: '192.0.2.99:25', remote: '198.51.100.7' } as const;
const client587 = { local: '192.0.2.99:587', remote: '198.51.100.7' } as const;
const tls = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };

describe('engine on the real policy.wasm', () => {
  it('selects the connector and renders the banner placeholders', () => {
    const d = engine.decide('connect', internet);
    expect(d).toMatchObject({
      stage: 'connect',
      decision: 'continue',
      reason: 'ok_connect',
      connector: 'Internet',
      principals: ['anonymous'],
      reply: { code: 220, enhanced: '', text: 'mx.contoso.test ESMTP MAIL Service ready' },
    });
    expect(d.id).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
  });

  it('gives each decision its own id', () => {
    expect(engine.decide('connect', internet).id).not.toBe(engine.decide('connect', internet).id);
  });

  it('treats an IPv4-mapped IPv6 client as IPv4 and accepts object endpoints', () => {
    const d = engine.decide('connect', { local: { ip: '::ffff:192.0.2.99', port: 25 }, remote: { ip: '::ffff:198.18.5.10' } });
    expect(d.connector).toBe('Scanner');
  });

  it('parses bracketed IPv6 endpoints', () => {
    expect(engine.decide('connect', { local: '[2001:db8::25]:587', remote: '[2001:db8::1]:40000' }).connector).toBe('Client');
  });

  it('advertises AUTH only after TLS on the client connector', () => {
    expect(engine.decide('ehlo', client587).advertise).toEqual({
      starttls: true,
      auth: [],
      size: 37748736,
      require_tls: false,
      client_certificate: 'none',
    });
    expect(engine.decide('ehlo', { ...client587, tls }).advertise?.auth).toEqual(['PLAIN', 'LOGIN']);
  });

  it('normalises the EHLO name for require_ehlo_domain', () => {
    const strict = { local: '192.0.2.99:2525', remote: '198.51.100.7' };
    expect(engine.decide('ehlo', { ...strict, helo: 'mx.example.test' }).decision).toBe('continue');
    expect(engine.decide('ehlo', { ...strict, helo: '[192.0.2.1]' }).decision).toBe('continue');
    expect(engine.decide('ehlo', { ...strict, helo: 'bad_name!' }).reason).toBe('ehlo_domain_invalid');
    expect(engine.decide('ehlo', { ...strict, helo: '' }).reason).toBe('ehlo_domain_required');
  });

  it('maps auth results and login case', () => {
    const base = { ...client587, tls };
    expect(engine.decide('auth', { ...base, auth: { mechanism: 'plain', user: 'ALICE' } })).toMatchObject({
      decision: 'continue',
      reply: { code: 235, enhanced: '2.7.0' },
    });
    expect(engine.decide('auth', { ...base, auth: { mechanism: 'LOGIN', user: 'alice', result: 'failure' } }).reason).toBe('auth_failed');
    expect(
      engine.decide('auth', { ...base, auth: { mechanism: 'LOGIN', user: 'alice', result: 'failure' }, counters: { logon_failures: 3 } }),
    ).toMatchObject({ decision: 'disconnect', reason: 'auth_too_many_failures' });
  });

  it('reads SIZE and SMTPUTF8 from MAIL parameters, case-insensitively', () => {
    expect(engine.decide('mail', { ...internet, mail_from: '<a@gmail.test>', mail_params: { size: '37748737' } }).reason).toBe('message_size');
    expect(engine.decide('mail', { ...internet, mail_from: '<a@gmail.test>', mail_params: { SIZE: 100 } }).decision).toBe('continue');
    expect(engine.decide('mail', { ...internet, mail_from: '<user@bücher.test>' }).reason).toBe('address_not_ascii');
    expect(engine.decide('mail', { ...internet, mail_from: '<user@bücher.test>', mail_params: { SMTPUTF8: true } }).decision).toBe('continue');
  });

  it.each([
    ['<user@contoso.test>', 'continue', 'authoritative'],
    ['<USER@Contoso.Test.>', 'continue', 'authoritative'],
    ['user@sub.contoso.test', 'continue', 'internal_relay'],
    ['<user@bücher.test>', 'reject', 'authoritative'], // accepted, but needs SMTPUTF8
    ['<user@victim.test>', 'reject', null],
    ['<relaytest%victim.test@contoso.test>', 'reject', 'authoritative'],
    ['<@contoso.test:relaytest@victim.test>', 'reject', null],
    ['<"relaytest@victim.test"@contoso.test>', 'reject', 'authoritative'],
    ['<user@[192.0.2.10]>', 'continue', 'local_literal'],
    ['<user@[IPv6:2001:db8::99]>', 'reject', null],
  ] as const)('relay decision for %s', (rcpt, decision, type) => {
    const d = engine.decide('rcpt', { ...internet, mail_from: '<>', rcpt_to: rcpt });
    expect(d.decision).toBe(decision);
    expect(d.recipient?.accepted_domain_type).toBe(type);
  });

  it('checks every header From mailbox, with display names and groups', () => {
    const strict = { local: '192.0.2.99:2525', remote: '198.51.100.7', mail_from: '<someone@gmail.test>' };
    const ok = engine.decide('headers', { ...strict, headers: { From: '"Someone, Jr." <someone@gmail.test>', Subject: 'hi' } });
    expect(ok.decision).toBe('continue');
    const spoof = engine.decide('headers', {
      ...strict,
      headers: [
        ['From', 'Team: someone@gmail.test, "CEO" <ceo@contoso.test>;'],
        ['Subject', 'hi'],
      ],
    });
    expect(spoof).toMatchObject({ decision: 'reject', reason: 'send_as_denied_anonymous' });
  });

  it('counts Received headers and lower-cases header names for the firewall', () => {
    const d = engine.decide('headers', {
      ...internet,
      mail_from: '<>',
      headers: { Received: ['from a', 'from b'], 'X-MS-Exchange-Organization-SCL': '-1', 'X-MTA-Policy-Auth-As': 'Internal' },
    });
    expect(d.header_actions).toEqual([
      { op: 'remove', name: 'x-ms-exchange-organization-scl' },
      { op: 'remove', name: 'x-mta-policy-auth-as' },
    ]);
    expect(d.message_flags).toEqual({
      auth_as: 'Anonymous',
      bypass_anti_spam: false,
      accept_authentication_flag: false,
      bypass_message_size_limit: false,
    });
  });

  it('turns a verified client certificate into the Partner principal', () => {
    const partner = { local: '192.0.2.99:25', remote: '203.0.113.5', mail_from: '<ceo@fabrikam.test>' };
    const cert = { verified: true, subject: 'CN=mx.fabrikam.test', san_dns: ['mx.fabrikam.test'] };
    expect(engine.decide('mail', { ...partner, tls: { ...tls, client_cert: cert } }).principals).toEqual(['partner']);
    expect(engine.decide('mail', { ...partner, tls: { ...tls, client_cert: { verified: true, subject: 'CN=fabrikam.test' } } }).principals).toEqual([
      'partner',
    ]);
    expect(engine.decide('mail', { ...partner, tls: { ...tls, client_cert: { ...cert, verified: false } } }).reason).toBe('partner_cert_invalid');
  });

  it('accepts at end of message with the flags again', () => {
    const d = engine.decide('eom', { ...client587, tls, auth: { mechanism: 'PLAIN', user: 'alice' }, mail_from: '<alice@contoso.test>', headers: {}, message_size: 10 });
    expect(d).toMatchObject({ decision: 'accept', reply: { code: 250, enhanced: '2.6.0' }, message_flags: { auth_as: 'Internal', bypass_anti_spam: true } });
  });

  it('includes explanation fields only on request', () => {
    expect(engine.decide('connect', internet).checks).toBeUndefined();
    const d = engine.decide('rcpt', { ...internet, mail_from: '<>', rcpt_to: '<x@victim.test>' }, { explain: true });
    expect(d.checks).toEqual([[5, 'relay_denied']]);
    expect(d.selected_by).toEqual({ binding: '0.0.0.0:25', range: '0.0.0.0-255.255.255.255' });
  });
});

describe('engine failures are temporary failures, never accepts', () => {
  it.each<[string, unknown]>([
    ['facts that are not an object', null],
    ['a local address that is not an IP', { local: 'mail.example:25', remote: '198.51.100.7' }],
    ['a remote address that is not an IP', { local: '192.0.2.1:25', remote: 'nope' }],
    ['a negative counter', { ...internet, counters: { logon_failures: -1 } }],
    ['a SIZE that is not a number', { ...internet, mail_from: '<>', mail_params: { SIZE: 'big' } }],
    ['too many header fields', { ...internet, headers: Array.from({ length: 2001 }, () => ['X-A', 'b']) }],
  ])('%s', (_label, facts) => {
    // End of headers reads every kind of fact (endpoints, counters, MAIL parameters, headers).
    const d = engine.decide('headers', facts as FactsFor<'headers'>);
    expect(d).toMatchObject({ decision: 'tempfail', reason: 'engine_error', reply: { code: 451, enhanced: '4.3.0' } });
    expect(d.error?.code).toBe('ENGINE_INPUT_INVALID');
  });

  it('closes the connection with 421 when CONNECT fails', () => {
    expect(engine.decide('connect', { local: 'x', remote: 'y' })).toMatchObject({
      decision: 'disconnect',
      reply: { code: 421, enhanced: '4.3.0' },
    });
  });

  const ctx = { id: 'x', fqdn: 'mx.test', clientIp: '192.0.2.1', session: null };
  const good = { decision: 'reject', reason: 'r', reply: { code: 550, enhanced: '5.7.1', text: 't' }, connector: 'C', principals: [], rights: '1010'.padEnd(20, '0'), recipient: { address: 'x@y.test', domain: 'y.test', accepted_domain_type: null, routed: false } };
  it.each<[string, unknown, string, Stage?]>([
    ['an undefined result', [], 'ENGINE_DECISION_UNDEFINED'],
    ['several results', [{ result: good }, { result: good }], 'ENGINE_DECISION_MULTIPLE'],
    ['a reject with a 4xx reply', [{ result: { ...good, reply: { code: 450, enhanced: '4.7.1', text: 't' } } }], 'ENGINE_DECISION_MALFORMED'],
    ['a tempfail with a 5xx reply', [{ result: { ...good, decision: 'tempfail' } }], 'ENGINE_DECISION_MALFORMED'],
    ['an enhanced code of the wrong class', [{ result: { ...good, reply: { code: 550, enhanced: '4.7.1', text: 't' } } }], 'ENGINE_DECISION_MALFORMED'],
    ['CR/LF in the text', [{ result: { ...good, reply: { code: 550, enhanced: '5.7.1', text: 'a\r\nb' } } }], 'ENGINE_DECISION_MALFORMED'],
    ['an unknown decision', [{ result: { ...good, decision: 'maybe' } }], 'ENGINE_DECISION_MALFORMED'],
    ['principals of the wrong type', [{ result: { ...good, principals: 'anonymous' } }], 'ENGINE_DECISION_MALFORMED'],
    ['a discard before there is a message', [{ result: { ...good, decision: 'discard' } }], 'ENGINE_DECISION_MALFORMED', 'auth'],
    ['rights that are not a rights string', [{ result: { ...good, rights: ['ms-Exch-SMTP-Submit'] } }], 'ENGINE_DECISION_MALFORMED'],
    ['a missing recipient block at RCPT', [{ result: { ...good, recipient: undefined } }], 'ENGINE_DECISION_MALFORMED'],
  ])('rejects %s', (_label, resultSet, code, stage = 'rcpt') => {
    expect(() => parseDecision(stage, resultSet, ctx)).toThrow(expect.objectContaining({ code }));
  });

  it('accepts a well-formed decision', () => {
    expect(parseDecision('rcpt', [{ result: good }], ctx)).toMatchObject({
      id: 'x',
      stage: 'rcpt',
      decision: 'reject',
      rights: ['ms-Exch-SMTP-Accept-Any-Recipient', 'ms-Exch-SMTP-Submit'],
    });
  });
});

describe('bundle verification', () => {
  async function copyBundle(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'mta-bundle-'));
    await cp(defaultBundleDir(), dir, { recursive: true });
    return dir;
  }

  it('loads the committed bundle', async () => {
    const b = await readBundle();
    expect(b.manifest.entrypoints).toHaveLength(8);
  });

  it('refuses a missing bundle', async () => {
    await expect(readBundle('/nonexistent/bundle')).rejects.toMatchObject({ code: 'ENGINE_BUNDLE_MISSING' });
  });

  it('refuses a corrupt policy.wasm', async () => {
    const dir = await copyBundle();
    try {
      await writeFile(join(dir, 'policy.wasm'), 'not wasm');
      await expect(readBundle(dir)).rejects.toMatchObject({ code: 'ENGINE_BUNDLE_CORRUPT' });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('refuses a bundle without every stage entrypoint', async () => {
    const dir = await copyBundle();
    try {
      const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { entrypoints: string[] };
      m.entrypoints = m.entrypoints.filter((e) => e !== 'mta/eom');
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
      await expect(readBundle(dir)).rejects.toMatchObject({ code: 'ENGINE_BUNDLE_ENTRYPOINTS' });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('refuses a bundle built from other sources (stale)', async () => {
    const dir = await copyBundle();
    try {
      const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { sources_sha256: string };
      m.sources_sha256 = '0'.repeat(64);
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
      await expect(readBundle(dir)).rejects.toMatchObject({ code: 'ENGINE_BUNDLE_STALE' });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('refuses a policy.wasm that is not a WebAssembly module', async () => {
    const engineWithConfig = Engine.create({ config: fixtureConfig(), bundle: { dir: 'x', wasm: new Uint8Array([0, 97, 115, 109]), manifest: (await readBundle()).manifest } });
    await expect(engineWithConfig).rejects.toMatchObject({ code: 'ENGINE_BUNDLE_CORRUPT' });
  });
});
