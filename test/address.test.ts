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
    connector: 'X',
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

  it('sends the selection bits only when the connector must be chosen', () => {
    const connect = buildInput('connect', facts);
    expect(connect.connection).toEqual({
      local: { ip: '192.0.2.10', port: 25 },
      remote: { family: '4', bits: '11000110001100110110010000000111' },
    });
    expect(buildInput('rcpt', facts, { knownConnector: () => true }).connection).toEqual({ local: { ip: '192.0.2.10' } });
    expect(buildInput('rcpt', facts, { knownConnector: () => false }).connection.remote?.family).toBe('4');
  });

  it('keeps each stage to its facts', () => {
    const ehlo = buildInput('ehlo', facts, { knownConnector: () => true });
    expect(ehlo.helo).toEqual({ name: 'mx.example.test', present: true, valid: true });
    expect(ehlo.mail).toBeUndefined();
    const auth = buildInput('auth', facts, { knownConnector: () => true });
    expect(auth.auth).toEqual({ mechanism: 'PLAIN', login: 'nancy', result: 'success' });
    expect(auth.counters).toEqual({ messages_last_minute: 2 });
    const mail = buildInput('mail', facts, { knownConnector: () => true });
    expect(mail.auth).toEqual({ login: 'nancy', result: 'success' });
    expect(mail.mail).toEqual({ address: { domain: 'example.test', key: 'a@example.test', parents: ['test'] }, size: 10, smtputf8: true });
    expect(mail.rcpt).toBeUndefined();
    expect(mail.tls).toEqual({ active: true });
    const rcpt = buildInput('rcpt', facts, { knownConnector: () => true });
    expect(rcpt.rcpt?.key).toBe('b@example.test');
    expect(rcpt.accepted_rcpt_count).toBe(1);
    expect(rcpt.message).toBeUndefined();
    const eom = buildInput('eom', facts, { knownConnector: () => true });
    expect(eom.message).toMatchObject({ header_names: ['from', 'received'], received_count: 2, size: 99 });
    expect(eom.message?.from).toEqual([{ domain: 'example.test', key: 'a@example.test', parents: ['test'] }]);
  });
});
