import { describe, expect, it } from 'vitest';
import { normaliseDomain, parentDomains, parsePath } from '../engine/address.js';
import { buildInput } from '../engine/input.js';

describe('parsePath: envelope addresses, normalised and flagged', () => {
  it.each([
    ['<user@Example.TEST>', { valid: true, local: 'user', domain: 'example.test', key: 'user@example.test' }],
    ['user@example.test.', { valid: true, domain: 'example.test' }],
    ['<User.Name+tag@sub.example.test>', { key: 'user.name+tag@sub.example.test', parents: ['example.test', 'test'] }],
    ['<user@bücher.test>', { valid: true, ascii: false, domain: 'xn--bcher-kva.test' }],
    ['<user@[192.0.2.1]>', { valid: true, literal: '192.0.2.1', domain: '[192.0.2.1]', parents: [] }],
    ['<user@[IPv6:2001:DB8::1]>', { valid: true, literal: '2001:db8::1' }],
    ['<>', { valid: true, null: true }],
    ['<"john doe"@example.test>', { valid: true, local: '"john doe"', routing: { quoted_at: false } }],
  ] as const)('%s', (raw, expected) => {
    expect(parsePath(raw)).toMatchObject(expected);
  });

  it.each([
    ['<relaytest%victim.test@our.test>', 'percent', 'our.test'],
    ['<victim.test!relaytest@our.test>', 'bang', 'our.test'],
    ['<"relaytest@victim.test"@our.test>', 'quoted_at', 'our.test'],
    ['<relaytest@victim.test@our.test>', 'multiple_at', 'our.test'],
    ['<@our.test,@hop.test:relaytest@victim.test>', 'source_route', 'victim.test'],
  ] as const)('flags routing in %s and judges the final domain', (raw, flag, domain) => {
    const a = parsePath(raw);
    expect(a.valid).toBe(true);
    expect(a.routing[flag]).toBe(true);
    expect(a.domain).toBe(domain);
  });

  it.each([
    'not an address',
    'user',
    '@example.test',
    'user@',
    '<user@example.test',
    'user@exa mple.test',
    'user@-bad-.test',
    'user@a..b',
    'user@[999.1.1.1]',
    'user@[2001:db8::1]', // IPv6 literals need the IPv6: tag
    'user@[IPv6:1.2.3.4]',
    '<@bad route:user@example.test>',
    `${'a'.repeat(65)}@example.test`,
    `user@${'a'.repeat(250)}.test`,
    `<user@example.test>${'x'.repeat(300)}`,
    '"unterminated@example.test',
  ])('refuses %s', (raw) => {
    expect(parsePath(raw).valid).toBe(false);
  });

  it('is total: random bytes never throw', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const chars = '<>@%!":,[].\\ aZ9-\u00e9\u0000\r\n';
    for (let i = 0; i < 5000; i++) {
      const s = Array.from({ length: Math.floor(rnd() * 40) }, () => chars[Math.floor(rnd() * chars.length)]).join('');
      expect(() => parsePath(s)).not.toThrow();
    }
  });

  it('normalises domains', () => {
    expect(normaliseDomain('MAIL.Example.TEST.')).toBe('mail.example.test');
    expect(normaliseDomain('')).toBeNull();
    expect(normaliseDomain('.')).toBeNull();
    expect(parentDomains('a.b.c.test')).toEqual(['b.c.test', 'c.test', 'test']);
  });
});

describe('buildInput: only what the stage reads', () => {
  const facts = {
    local: '192.0.2.10:25',
    remote: '::ffff:198.51.100.7',
    tls: { version: 'TLSv1.3', cipher: 'c' },
    helo: 'mx.example.test',
    auth: { mechanism: 'plain', user: 'Nancy' },
    counters: { logon_failures: 0, messages_last_minute: 2 },
    mail_from: '<a@example.test>',
    mail_params: { size: '10', smtputf8: true },
    rcpt_to: '<b@example.test>',
    accepted_rcpt_count: 1,
    headers: { From: 'A <a@example.test>', Received: ['x', 'y'] },
    message_size: 99,
  };

  it('always sends what connector selection needs', () => {
    for (const stage of ['connect', 'rcpt'] as const) {
      expect(buildInput(stage, facts).connection).toEqual({
        local: { ip: '192.0.2.10', port: 25 },
        remote: { ip: '198.51.100.7', family: '4', bits: '11000110001100110110010000000111' },
      });
    }
  });

  it('keeps each stage to its facts', () => {
    const ehlo = buildInput('ehlo', facts);
    expect(ehlo.helo).toEqual({ name: 'mx.example.test', present: true, valid: true });
    expect(ehlo.mail).toBeUndefined();
    const auth = buildInput('auth', facts);
    expect(auth.auth).toEqual({ mechanism: 'PLAIN', login: 'nancy', result: 'success' });
    expect(auth.counters).toEqual({ messages_last_minute: 2 });
    const mail = buildInput('mail', facts);
    expect(mail.mail).toEqual({ address: { domain: 'example.test', key: 'a@example.test', parents: ['test'] }, size: 10, smtputf8: true });
    expect(mail.rcpt).toBeUndefined();
    expect(mail.tls).toEqual({ active: true });
    const rcpt = buildInput('rcpt', facts);
    expect(rcpt.rcpt?.key).toBe('b@example.test');
    expect(rcpt.accepted_rcpt_count).toBe(1);
    expect(rcpt.message).toBeUndefined();
    const eom = buildInput('eom', facts);
    expect(eom.message).toMatchObject({ header_names: ['from', 'received'], received_count: 2, size: 99 });
    expect(eom.message?.from).toEqual([{ domain: 'example.test', key: 'a@example.test', parents: ['test'] }]);
  });

  it('treats only an object as TLS', () => {
    expect(buildInput('auth', { ...facts, tls: false as unknown as null }).tls).toBeUndefined();
    expect(buildInput('auth', { ...facts, tls: null }).tls).toBeUndefined();
    expect(buildInput('auth', { ...facts, tls: {} }).tls).toEqual({ active: true });
    for (const tls of [true, 0, '', 'TLSv1.3', []]) {
      expect(() => buildInput('auth', { ...facts, tls: tls as unknown as null })).toThrow(/tls must be an object/);
    }
  });

  it.each<[string, unknown]>([
    ['an empty login', { mechanism: 'PLAIN', user: '' }],
    ['a padded login', { mechanism: 'PLAIN', user: ' crm-app' }],
    ['a login with a NUL', { mechanism: 'PLAIN', user: 'crm-app\u0000' }],
    ['a null result', { mechanism: 'PLAIN', user: 'nancy', result: null }],
    ['an unknown result', { mechanism: 'PLAIN', user: 'nancy', result: 'ok' }],
    ['no mechanism', { user: 'nancy' }],
    ['auth that is not an object', 'nancy'],
  ])('refuses %s', (_label, auth) => {
    expect(() => buildInput('mail', { ...facts, auth: auth as never })).toThrow(expect.objectContaining({ code: 'ENGINE_INPUT_INVALID' }));
  });

  it('refuses stages without the facts they decide on', () => {
    const { mail_from: _m, ...noMail } = facts;
    const { rcpt_to: _r, ...noRcpt } = facts;
    expect(() => buildInput('mail', noMail)).toThrow(/needs mail_from/);
    expect(() => buildInput('eom', noMail)).toThrow(/needs mail_from/);
    expect(() => buildInput('rcpt', noRcpt)).toThrow(/needs rcpt_to/);
    expect(() => buildInput('connect', noMail)).not.toThrow();
  });

  it('refuses endpoints of different families', () => {
    expect(() => buildInput('connect', { local: '192.0.2.10:25', remote: '2001:db8::1' })).toThrow(/different address families/);
  });

  it('refuses malformed parameters and oversized headers', () => {
    for (const size of ['', '0x10', '1e3', -1, 'big']) {
      expect(() => buildInput('mail', { ...facts, mail_params: { SIZE: size } })).toThrow(/not a byte count/);
    }
    expect(() => buildInput('mail', { ...facts, mail_params: { SMTPUTF8: 'false' } })).toThrow(/takes no value/);
    expect(() => buildInput('mail', { ...facts, mail_params: 'SIZE=1' as never })).toThrow(/mail_params must be an object/);
    expect(() => buildInput('eom', { ...facts, headers: { X: 'a'.repeat(65537) } })).toThrow(/longer than 65536 bytes/);
    expect(() => buildInput('eom', { ...facts, headers: { X: 1 as unknown as string } })).toThrow(/string value/);
    expect(() => buildInput('eom', { ...facts, counters: 'x' as never })).toThrow(/counters must be an object/);
  });

  it('counts header size in bytes, not UTF-16 units', () => {
    const ascii = buildInput('eom', { ...facts, headers: { Subject: 'aaaa' } }).message?.header_size ?? 0;
    const utf8 = buildInput('eom', { ...facts, headers: { Subject: 'ääää' } }).message?.header_size ?? 0;
    expect(utf8 - ascii).toBe(4);
  });

  it('never turns a From mailbox without an address into the null sender', () => {
    for (const from of ['ceo', '=?utf-8?q?CEO?= <>', 'Undisclosed:;']) {
      const message = buildInput('eom', { ...facts, headers: { From: from } }).message;
      expect(message?.from.every((a) => a.invalid === true && a.null === undefined)).toBe(true);
    }
  });

  it('reads the CN only at an RDN boundary', () => {
    const names = (subject: string): Record<string, true> | undefined =>
      buildInput('mail', { ...facts, tls: { client_cert: { verified: true, subject } } }).tls?.client_cert?.names;
    expect(names('CN=mx.fabrikam.test,O=Fabrikam')).toHaveProperty(['mx.fabrikam.test']);
    expect(names('/C=US/O=Fabrikam/CN=mx.fabrikam.test')).toHaveProperty(['mx.fabrikam.test']);
    expect(names('O=x\\,CN=fabrikam.test,CN=evil.test')).toEqual({ 'evil.test': true, test: true });
  });
});
