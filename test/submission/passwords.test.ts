import { describe, expect, it } from 'vitest';
import {
  MAX_PASSWORD_BYTES,
  parsePasswordHash,
  verifyPassword,
  type ParseFailure,
  type PasswordHash,
} from '../../adapters/submission/passwords.js';
import { encrypt } from 'unixcrypt';
import { dovecotHash } from '../peers/harness.js';

const SECRET = 'sécret pass ✓';

function ok(text: string): PasswordHash {
  const h = parsePasswordHash(text);
  if (h.kind === 'invalid') throw new Error(`unexpected parse failure for ${text}: ${h.message}`);
  return h;
}
function bad(text: string): ParseFailure {
  const h = parsePasswordHash(text);
  if (h.kind !== 'invalid') throw new Error(`expected a parse failure for ${text}`);
  return h;
}

describe('Dovecot-generated hashes verify', () => {
  const cases: Array<[string, string[], PasswordHash['kind']]> = [
    ['SHA512-CRYPT', [], 'sha-crypt'],
    ['SHA512-CRYPT', ['-r', '20000'], 'sha-crypt'],
    ['SHA256-CRYPT', [], 'sha-crypt'],
    ['BLF-CRYPT', [], 'bcrypt'],
    ['BLF-CRYPT', ['-r', '8'], 'bcrypt'],
    ['ARGON2ID', [], 'argon2'],
    ['ARGON2I', [], 'argon2'],
    ['CRYPT', [], 'bcrypt'],
  ];
  it.each(cases)('%s %j', async (scheme, args, kind) => {
    const text = await dovecotHash(SECRET, scheme, args);
    const h = ok(text);
    expect(h.kind).toBe(kind);
    expect(await verifyPassword(h, SECRET)).toBe(true);
    expect(await verifyPassword(h, SECRET + 'x')).toBe(false);
    expect(await verifyPassword(h, SECRET.slice(0, -1))).toBe(false);
    // The same string without the {SCHEME} prefix is a bare crypt form.
    const bare = ok(text.replace(/^\{[^}]+\}/, ''));
    expect(bare.kind).toBe(kind);
    expect(await verifyPassword(bare, SECRET)).toBe(true);
  });

  it('parses the cost parameters', async () => {
    const a = ok(await dovecotHash('x', 'ARGON2ID'));
    expect(a).toMatchObject({ kind: 'argon2', scheme: 'ARGON2ID', memoryKiB: 65536, passes: 3, parallelism: 1 });
    expect(ok(await dovecotHash('x', 'BLF-CRYPT', ['-r', '7']))).toMatchObject({ cost: 7 });
    expect(ok(await dovecotHash('x', 'SHA512-CRYPT', ['-r', '12345']))).toMatchObject({ rounds: 12345 });
    expect(ok(await dovecotHash('x', 'SHA256-CRYPT'))).toMatchObject({ rounds: 5000, scheme: 'SHA256-CRYPT' });
    expect(ok('{sha512-crypt}' + (await dovecotHash('x', 'SHA512-CRYPT')).slice(14)).scheme).toBe('SHA512-CRYPT');
  });

  it('accepts $2a$ and $2b$ as well as $2y$', async () => {
    const y = (await dovecotHash(SECRET, 'BLF-CRYPT')).slice('{BLF-CRYPT}'.length);
    for (const p of ['$2a$', '$2b$']) expect(await verifyPassword(ok(p + y.slice(4)), SECRET)).toBe(true);
  });

  it('runs SHA-crypt verifications concurrently without mixing up answers', async () => {
    const h = ok(await dovecotHash(SECRET, 'SHA512-CRYPT'));
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => verifyPassword(h, i % 2 === 0 ? SECRET : `no${i}`)));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i % 2 === 0));
  });
});

describe('password bounds', () => {
  it('never verifies an empty, NUL-carrying or over-long password', async () => {
    // doveadm (libxcrypt) refuses passphrases over 512 bytes, so these hashes come from unixcrypt.
    const atLimit = 'p'.repeat(MAX_PASSWORD_BYTES);
    const over = atLimit + 'p';
    expect(await verifyPassword(ok(encrypt(atLimit, '$6$abcdefgh')), atLimit)).toBe(true);
    expect(await verifyPassword(ok(encrypt(over, '$6$abcdefgh')), over)).toBe(false);
    const e = ok(await dovecotHash('a', 'BLF-CRYPT'));
    expect(await verifyPassword(e, '')).toBe(false);
    expect(await verifyPassword(e, 'a\0')).toBe(false);
  });

  it('bcrypt keeps crypt(3) semantics: only the first 72 bytes count', async () => {
    const p72 = 'k'.repeat(72);
    const h = ok(await dovecotHash(p72, 'BLF-CRYPT'));
    expect(await verifyPassword(h, p72 + 'anything')).toBe(true);
    expect(await verifyPassword(h, p72.slice(1))).toBe(false);
  });
});

describe('refused and malformed hashes', () => {
  it.each(['PLAIN', 'CLEARTEXT', 'MD5-CRYPT', 'SSHA512', 'SHA512', 'CRAM-MD5', 'PLAIN-MD5', 'SSHA', 'SCRAM-SHA-256', 'PBKDF2'])(
    'refuses {%s} with the reason',
    async (scheme) => {
      const f = bad(await dovecotHash(SECRET, scheme));
      expect(f.code).toBe('HASH_SCHEME_REFUSED');
      expect(f.message).toContain(`{${scheme}}`);
      expect(f.message).toMatch(/refused: it (stores|is)/);
      expect(f.fix).toContain('doveadm pw');
    },
  );

  it('refuses other crypt(3) families, naming them', () => {
    expect(bad('$1$8S75L2Bi$dkSVuxMxiaH.Cv9V.eQ8O.').message).toContain('MD5-crypt');
    expect(bad('{CRYPT}$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7').message).toContain('yescrypt');
    expect(bad('{CRYPT}abJnggxhB/yWI').message).toContain('DES');
    expect(bad('$2x$05$hsKtosYVS4LegxhDgGAux.u1qFxKr0QLAbBlrfD.GQeKQYtdjmn8G').message).toContain('$2x$');
  });

  const sha = '$6$taQEoV.DcLWOoAkw$jQYOmc/l/h0vbcjJijaaGqP7O4bCZ3SXSxosJ8dRzi8WgnBY6Mqiv0JOO5faFSNInsvUSIM5w0PYJCHZlrY0d/';
  const bcrypt = '$2y$05$hsKtosYVS4LegxhDgGAux.u1qFxKr0QLAbBlrfD.GQeKQYtdjmn8G';
  const argon = '$argon2id$v=19$m=65536,t=3,p=1$2NFTPblayFemIO4qqy361w$7aYmljB/vJwgnA+Z+geB9ubBfljl1Lzzu18UVU+I8Ng';
  it.each<[string, string]>([
    ['', 'HASH_EMPTY'],
    ['   ', 'HASH_EMPTY'],
    ['{SHA512-CRYPT', 'HASH_MALFORMED'],
    ['{NOPE}abc', 'HASH_SCHEME_UNKNOWN'],
    ['{SHA512-CRYPT.b64}abc', 'HASH_SCHEME_REFUSED'],
    ['{SHA512-CRYPT}' + sha.slice(0, -1), 'HASH_MALFORMED'],
    ['{SHA512-CRYPT}' + sha + 'x', 'HASH_MALFORMED'],
    ['{SHA512-CRYPT}' + bcrypt, 'HASH_MALFORMED'],
    ['{SHA256-CRYPT}' + sha, 'HASH_MALFORMED'],
    ['$6$rounds=999$abc$' + sha.slice(-86), 'HASH_MALFORMED'],
    ['$6$rounds=999999999$abc$' + sha.slice(-86), 'HASH_COST_TOO_HIGH'],
    ['$6$salt!salt$' + sha.slice(-86), 'HASH_MALFORMED'],
    ['{BLF-CRYPT}' + bcrypt.slice(0, -1), 'HASH_MALFORMED'],
    ['{BLF-CRYPT}$2y$03' + bcrypt.slice(6), 'HASH_MALFORMED'],
    ['{BLF-CRYPT}$2y$15' + bcrypt.slice(6), 'HASH_COST_TOO_HIGH'],
    ['{BLF-CRYPT}$2y$31' + bcrypt.slice(6), 'HASH_COST_TOO_HIGH'],
    ['{ARGON2I}' + argon, 'HASH_MALFORMED'],
    ['{ARGON2ID}' + argon.replace('v=19', 'v=16'), 'HASH_MALFORMED'],
    ['{ARGON2ID}' + argon.replace('m=65536', 'm=4194304'), 'HASH_COST_TOO_HIGH'],
    ['{ARGON2ID}' + argon.replace('t=3', 't=1000'), 'HASH_COST_TOO_HIGH'],
    ['{ARGON2ID}' + argon.replace('p=1', 'p=64'), 'HASH_COST_TOO_HIGH'],
    ['{ARGON2ID}' + argon.replace('m=65536', 'm=4'), 'HASH_MALFORMED'],
    ['{ARGON2ID}' + argon.replace('2NFTPblayFemIO4qqy361w', 'c2FsdA'), 'HASH_MALFORMED'],
    ['{ARGON2ID}' + argon.replace('$7aYm', '$7a*m'), 'HASH_MALFORMED'],
    ['{ARGON2ID}' + argon + '$extra', 'HASH_MALFORMED'],
    ['{ARGON2ID}' + argon.replace(',p=1', ',p=1,keyid=x'), 'HASH_MALFORMED'],
    ['plaintext-looking', 'HASH_MALFORMED'],
  ])('%j → %s', (text, code) => {
    expect(bad(text).code).toBe(code);
  });

  it('a malformed-but-accepted-looking hash never verifies (tampered digest)', async () => {
    // A character inside the digest, not the last one: crypt's base64 leaves the last
    // character's low bits unused, so changing only those would not change the digest.
    const tamper = (h: string): string => {
      const i = h.length - 10;
      return h.slice(0, i) + (h[i] === 'a' ? 'b' : 'a') + h.slice(i + 1);
    };
    const h = ok(tamper(await dovecotHash(SECRET, 'SHA512-CRYPT')));
    expect(await verifyPassword(h, SECRET)).toBe(false);
    const b = await dovecotHash(SECRET, 'BLF-CRYPT');
    expect(await verifyPassword(ok(tamper(b)), SECRET)).toBe(false);
  });
});
