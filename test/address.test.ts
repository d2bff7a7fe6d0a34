import { describe, expect, it } from 'vitest';
import { certificateDomain, normaliseDomain, parentDomains, parseDomain, parsePath, parseReversePath } from '../engine/address.js';
import { buildInput } from '../engine/input.js';
import { fuzz, mutate, pick, randomString } from './helpers/fuzz.js';

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

  it('normalises domains', () => {
    expect(normaliseDomain('MAIL.Example.TEST.')).toBe('mail.example.test');
    expect(normaliseDomain('')).toBeNull();
    expect(normaliseDomain('.')).toBeNull();
    expect(parentDomains('a.b.c.test')).toEqual(['b.c.test', 'c.test', 'test']);
  });
});

describe('parseDomain: RFC 5321 syntax first, then UTS-46 for non-ASCII names', () => {
  it.each([
    ['MAIL.Example.TEST.', 'mail.example.test'],
    ['a', 'a'],
    ['r3---sn-4g5e.googlevideo.test', 'r3---sn-4g5e.googlevideo.test'], // RFC 5321 ldh-str allows inner "--"
    ['bücher.test', 'xn--bcher-kva.test'],
    ['BÜCHER.Test', 'xn--bcher-kva.test'],
    ['XN--BCHER-KVA.test', 'xn--bcher-kva.test'],
    ['faß.de', 'xn--fa-hia.de'], // non-transitional: ß stays ß, not "ss"
    ['bücher\u3002test', 'xn--bcher-kva.test'], // UTS-46 maps the ideographic full stop
    ['nort\u00adhwind.test', 'northwind.test'], // UTS-46 ignores the soft hyphen
    ['\u0627\u0644\u0639\u0631\u0628\u064a\u0629.test', 'xn--mgbcd4a2b0d2b.test'],
    [`${'a'.repeat(63)}.test`, `${'a'.repeat(63)}.test`],
    [`${'a.'.repeat(126)}b`, `${'a.'.repeat(126)}b`], // 253 characters
  ])('%s → %s', (text, domain) => {
    expect(parseDomain(text)).toEqual({ ok: true, domain });
    expect(normaliseDomain(domain)).toBe(domain);
  });

  it.each([
    ['', 'empty'],
    ['.', 'empty'],
    ['a..b', 'empty_label'],
    ['.a.test', 'empty_label'],
    ['a.test..', 'empty_label'],
    ['northwind.test/victim.test', 'character'], // a URL parser cuts at "/"
    ['victim.test%2enorthwind.test', 'character'], // a URL parser decodes %2e
    ['northwind.test?x', 'character'],
    ['northwind.test#x', 'character'],
    ['northwind.test\\x', 'character'],
    ['u@northwind.test', 'character'],
    ['north wind.test', 'character'],
    ['northwind.test:25', 'character'],
    ['a_b.test', 'character'],
    ['bücher.test/x', 'character'],
    ['b\u00fccher%2etest', 'character'],
    ['-bad.test', 'hyphen'],
    ['bad-.test', 'hyphen'],
    ['1.2.3.4', 'numeric_tld'], // RFC 1123 §2.1: a TLD is never all digits
    ['0x7f.1', 'numeric_tld'], // a URL parser reads this as 127.0.0.1
    ['example.123', 'numeric_tld'],
    [`${'a'.repeat(64)}.test`, 'label_too_long'],
    [`${'a.'.repeat(126)}bc`, 'too_long'], // 254 characters
    [`${'é'.repeat(128)}`, 'too_long'], // 256 UTF-8 octets
    ['xn--bcher-kvb.test', 'idna'], // not the A-label of anything valid
    ['xn--a.test', 'idna'],
    ['xn--ab-.test', 'hyphen'],
    ['-bücher.test', 'idna'], // CheckHyphens on the U-label
    ['ab\u200dc.test', 'idna'], // CheckJoiners
    ['\u0663.test', 'idna'], // CheckBidi: an Arabic-Indic digit cannot start a label
    ['\u0627.1test', 'idna'], // CheckBidi applies to every label of a Bidi name
    ['bücher\uff0ftest', 'idna'], // fullwidth solidus maps to "/" and STD3 refuses it
    ['bücher\u3000test', 'idna'], // ideographic space maps to a space
    ['\ud800.test', 'character'], // lone surrogate
    [`${'中'.repeat(60)}.test`, 'idna'], // VerifyDnsLength on the A-label
  ])('refuses %s (%s)', (text, problem) => {
    expect(parseDomain(text)).toEqual({ ok: false, problem });
    expect(normaliseDomain(text)).toBeNull();
  });

  it('is total and idempotent on random and mutated names', () => {
    const alphabet = ['a', 'Z', '0', '9', '-', '.', '.', 'xn--', 'ü', 'ß', '\u3002', '\u00ad', '\u0627', '\u200d', '%', '/', '@', ' ', '_', '\u0000', '\ud800', 'K', '\u212a'];
    const seeds = ['northwind.test', 'bücher.test', 'xn--bcher-kva.test', 'mx.fabrikam.test.', 'r3---sn.x.test'];
    const ran = fuzz({ seed: 5321, count: 20_000, budgetMs: 15_000 }, (rand) => {
      const text = rand() < 0.5 ? randomString(rand, alphabet, 24) : mutate(rand, pick(rand, seeds), alphabet);
      const d = normaliseDomain(text);
      if (d === null) return;
      expect(d).toMatch(/^[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})*$/);
      expect(d.length).toBeLessThanOrEqual(253);
      expect(normaliseDomain(d)).toBe(d);
    });
    expect(ran).toBeGreaterThan(0);
  });
});

describe('certificateDomain: SAN dNSName or CN', () => {
  it.each([
    ['mx.fabrikam.test', 'mx.fabrikam.test'],
    ['*.fabrikam.test', 'fabrikam.test'],
    ['MX.Fabrikam.Test.', 'mx.fabrikam.test'],
    ['fabrikam.test/evil', null],
    ['fabrikam.test%2fevil', null],
    ['*.*.fabrikam.test', null],
    ['f*.fabrikam.test', null],
    ['*', null],
    ['*.', null],
    ['192.0.2.1', null],
    ['', null],
  ])('%s → %s', (name, domain) => {
    expect(certificateDomain(name)).toBe(domain);
  });
});

describe('parseReversePath: MAIL FROM', () => {
  it('refuses several @ in a sender, which RCPT only flags', () => {
    expect(parseReversePath('<a@victim.test@northwind.test>')).toMatchObject({ valid: false, problem: 'multiple_at', key: '' });
    expect(parseReversePath('a@victim.test@northwind.test')).toMatchObject({ valid: false, problem: 'multiple_at' });
    expect(parsePath('<a@victim.test@northwind.test>')).toMatchObject({ valid: true, routing: { multiple_at: true } });
  });

  it.each([
    ['<>', { valid: true, null: true }],
    ['<nancy@northwind.test>', { valid: true, key: 'nancy@northwind.test' }],
    ['<"a@victim.test"@northwind.test>', { valid: true, routing: { quoted_at: true } }],
    ['<a%victim.test@northwind.test>', { valid: true, routing: { percent: true } }],
    ['<@hop.test:nancy@northwind.test>', { valid: true, routing: { source_route: true }, key: 'nancy@northwind.test' }],
  ] as const)('keeps %s as RFC 5321 allows it', (raw, expected) => {
    expect(parseReversePath(raw)).toMatchObject(expected);
  });
});

describe('parsePath: keys, limits and refusals', () => {
  it.each([
    ['<NANCY@Northwind.TEST>', 'nancy@northwind.test'],
    ['<\u212aelvin@northwind.test>', '\u212aelvin@northwind.test'], // Kelvin sign: ASCII folding leaves it
    ['<"ceo"@northwind.test>', 'ceo@northwind.test'], // RFC 5321 §4.1.2: needless quotes change nothing
    ['<"c\\eo"@northwind.test>', 'ceo@northwind.test'],
    ['<"John Doe"@northwind.test>', '"john doe"@northwind.test'],
    ['<"a\\"b"@northwind.test>', '"a\\"b"@northwind.test'],
    ['<"a..b"@northwind.test>', 'a..b@northwind.test'],
    ['<a..b@northwind.test>', 'a..b@northwind.test'], // dots are tolerated, as Postfix does
    ['<pelé@bücher.test>', 'pelé@xn--bcher-kva.test'],
  ])('%s has key %s', (raw, key) => {
    expect(parsePath(raw)).toMatchObject({ valid: true, key });
  });

  it.each([
    ['<u@northwind.test/victim.test>', 'domain'],
    ['<u@victim.test%2enorthwind.test>', 'domain'],
    ['<u@northwind.test#victim.test>', 'domain'],
    ['<u@1.2.3.4>', 'domain'], // an IP needs the literal form
    ['u@northwind.test>', 'brackets'],
    ['<u@north\u0000wind.test>', 'control'],
    ['<u@northwind.test\r\n>', 'control'],
    ['<u\u0085@northwind.test>', 'control'],
    ['<u\ud800@northwind.test>', 'control'],
    ['<a,b@northwind.test>', 'local'],
    ['<a b@northwind.test>', 'local'],
    ['<a@@northwind.test>', 'local'],
    ['<"a"b@northwind.test>', 'local'],
    ['<"a\\\u00e9"@northwind.test>', 'local'], // quoted-pairSMTP is \\ + %d32-126
    ['<@bad_hop:u@northwind.test>', 'route'],
    ['<@hop.test u@northwind.test>', 'route'],
    ['<u@[IPv7:1::1]>', 'literal'],
    ['<>x', 'brackets'],
    ['', 'local'],
  ])('refuses %s (%s)', (raw, problem) => {
    expect(parsePath(raw)).toMatchObject({ valid: false, problem, key: '' });
  });

  it('bounds a path at 256 octets including the brackets, a local part at 64 octets', () => {
    const domain = `${'d'.repeat(60)}.${'d'.repeat(60)}.${'d'.repeat(60)}.tests`; // 188
    const path = (local: string): string => `<${local}@${domain}>`;
    expect(path('l'.repeat(64)).length).toBe(255);
    expect(parsePath(path('l'.repeat(64))).valid).toBe(true);
    expect(parsePath(`<${'l'.repeat(64)}@${domain}x>`).valid).toBe(true); // 256
    expect(parsePath(`<${'l'.repeat(64)}@${domain}xy>`)).toMatchObject({ problem: 'too_long' }); // 257
    expect(parsePath(`${'l'.repeat(64)}@${domain}xy`)).toMatchObject({ problem: 'too_long' }); // brackets counted when absent
    expect(parsePath(`<${'é'.repeat(32)}@x.test>`).valid).toBe(true); // 64 octets
    expect(parsePath(`<${'é'.repeat(33)}@x.test>`)).toMatchObject({ problem: 'local_too_long' });
  });

  it('is total on random and mutated paths; results are consistent', () => {
    const alphabet = ['<', '>', '@', '@', '%', '!', '"', '\\', ':', ',', '[', ']', '.', ' ', '\t', 'a', 'Z', '9', '-', 'é', 'ü', '\u212a', '\u0000', '\r', '\n', 'IPv6:', 'xn--', '/', '#'];
    const seeds = ['<nancy@northwind.test>', '<"a b"@x.test>', '<@hop.test,@b.test:u@x.test>', '<u@[192.0.2.1]>', '<u@[IPv6:2001:db8::1]>', '<a@b@c.test>', '<>', 'pelé@bücher.test'];
    const ran = fuzz({ seed: 2821, count: 20_000, budgetMs: 15_000 }, (rand) => {
      const raw = rand() < 0.4 ? randomString(rand, alphabet, 40) : mutate(rand, pick(rand, seeds), alphabet);
      const forward = parsePath(raw);
      const reverse = parseReversePath(raw);
      expect(forward.valid).toBe(forward.problem === null);
      if (reverse.valid) expect([reverse.routing.multiple_at, forward]).toEqual([false, reverse]);
      else if (forward.valid) expect([forward.routing.multiple_at, reverse.problem]).toEqual([true, 'multiple_at']);
      if (!forward.valid || forward.null) return;
      if (forward.literal === null) expect(normaliseDomain(forward.domain)).toBe(forward.domain);
      expect(forward.key.endsWith(`@${forward.domain}`)).toBe(true);
      // The key is canonical: as a path it parses to the same key.
      if (forward.literal === null) expect(parsePath(`<${forward.key}>`).key).toBe(forward.key);
    });
    expect(ran).toBeGreaterThan(0);
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
