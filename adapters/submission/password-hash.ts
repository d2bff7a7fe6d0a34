/**
 * Password hashes in Dovecot's `{SCHEME}hash` notation (doc.dovecot.org "Password schemes") and
 * bare crypt(3) strings, parsed once at configuration time (verification: passwords.ts). Pure:
 * no I/O and no native modules, so the configuration loader can use it.
 *
 * Accepted: ARGON2ID / ARGON2I (PHC string, RFC 9106), BLF-CRYPT or BCRYPT (bcrypt `$2a$`/`$2b$`/`$2y$`),
 * SHA512-CRYPT / SHA256-CRYPT (Drepper's SHA-crypt `$6$`/`$5$`), and `{CRYPT}` or no prefix when
 * the string is one of those crypt forms (Dovecot's passwd-file default scheme is CRYPT).
 * Everything else is refused with the reason (Dovecot "Password schemes" documentation).
 *
 * Cost limits: a hash string is configuration, and a cost parameter in it decides how much CPU
 * and memory every login attempt for that user burns — attempts an unauthenticated client can
 * make at will. Each limit keeps one verification to about 2 s of one core (measured on the
 * project's 2-core reference VM) and argon2's memory to 256 MiB per attempt in flight.
 */

/** Longest password verified, in UTF-8 bytes. RFC 4616 §2 requires 255; SHA-crypt's cost grows with the square of the length. */
export const MAX_PASSWORD_BYTES = 1024;
/** Argon2 memory cost ceiling, KiB (4× Dovecot's default of 64 MiB). */
export const MAX_ARGON2_MEMORY_KIB = 256 * 1024;
/** Argon2 time cost (passes) ceiling. */
export const MAX_ARGON2_PASSES = 16;
/** Argon2 lanes ceiling. */
export const MAX_ARGON2_PARALLELISM = 16;
/** bcrypt cost ceiling (2^14 rounds, about 1.7 s here). */
export const MAX_BCRYPT_COST = 14;
/** SHA-crypt rounds ceiling (crypt(3) allows 999 999 999; 500 000 is about 2.5 s here). */
export const MAX_SHA_CRYPT_ROUNDS = 500_000;

/** A parsed, verifiable hash. `encoded` is the crypt/PHC string without the `{SCHEME}` prefix. */
export type PasswordHash =
  | {
      readonly kind: 'argon2';
      readonly scheme: 'ARGON2ID' | 'ARGON2I';
      readonly memoryKiB: number;
      readonly passes: number;
      readonly parallelism: number;
      readonly encoded: string;
    }
  | { readonly kind: 'bcrypt'; readonly scheme: 'BLF-CRYPT'; readonly cost: number; readonly encoded: string }
  | {
      readonly kind: 'sha-crypt';
      readonly scheme: 'SHA512-CRYPT' | 'SHA256-CRYPT';
      readonly rounds: number;
      readonly encoded: string;
    };

/** Why a hash string was refused. */
export type ParseFailureCode =
  | 'HASH_EMPTY'
  | 'HASH_SCHEME_UNKNOWN'
  | 'HASH_SCHEME_REFUSED'
  | 'HASH_MALFORMED'
  | 'HASH_COST_TOO_HIGH';

/** A refused hash: `message` says what is wrong and why, `fix` how to produce an accepted one. */
export interface ParseFailure {
  readonly kind: 'invalid';
  readonly code: ParseFailureCode;
  readonly message: string;
  readonly fix: string;
}


const FIX = 'generate one with `doveadm pw -s ARGON2ID` (or BLF-CRYPT, SHA512-CRYPT)';

const fail = (code: ParseFailureCode, message: string, fix = FIX): ParseFailure => ({ kind: 'invalid', code, message, fix });

const CLEARTEXT = 'stores the password itself, readable by anyone who reads the file';
const FAST_DIGEST = 'is a single fast digest, brute-forced offline at billions of guesses per second';
/** Schemes Dovecot knows that we refuse, with the reason. `doveadm pw -l` on 2.3.19. */
const REFUSED: Readonly<Record<string, string>> = {
  PLAIN: CLEARTEXT,
  CLEARTEXT: CLEARTEXT,
  'PLAIN-TRUNC': CLEARTEXT,
  MD5: FAST_DIGEST,
  'PLAIN-MD5': FAST_DIGEST,
  'LDAP-MD5': FAST_DIGEST,
  'PLAIN-MD4': FAST_DIGEST,
  SHA: FAST_DIGEST,
  SHA1: FAST_DIGEST,
  SHA256: FAST_DIGEST,
  SHA512: FAST_DIGEST,
  SMD5: FAST_DIGEST,
  SSHA: FAST_DIGEST,
  SSHA256: FAST_DIGEST,
  SSHA512: FAST_DIGEST,
  NTLM: FAST_DIGEST,
  LANMAN: 'is the LAN Manager hash: upper-cased, split into 7-character halves, trivially cracked',
  'MD5-CRYPT': 'is MD5-crypt, withdrawn by its author in 2012 as too fast to resist brute force',
  'CRAM-MD5': 'is a CRAM-MD5 secret, equivalent to the cleartext password',
  'DIGEST-MD5': 'is a DIGEST-MD5 secret, equivalent to the cleartext password for its realm',
  'SCRAM-SHA-1': 'is a SCRAM verifier, usable only by the SCRAM mechanism, which this listener does not offer',
  'SCRAM-SHA-256': 'is a SCRAM verifier, usable only by the SCRAM mechanism, which this listener does not offer',
  PBKDF2: "is Dovecot's own PBKDF2-SHA1 format, not supported",
  OTP: 'is a one-time-password state, not a password hash',
  SKEY: 'is a one-time-password state, not a password hash',
  RPA: 'is an RPA secret, equivalent to the cleartext password',
};

/** crypt(3) prefixes other than the accepted ones, with the reason they are refused. */
const REFUSED_CRYPT: ReadonlyArray<readonly [RegExp, string]> = [
  [/^\$1\$/, 'is MD5-crypt ($1$), withdrawn by its author in 2012 as too fast to resist brute force'],
  [/^\$y\$/, 'is yescrypt ($y$); no maintained implementation exists for Node.js'],
  [/^\$(7|gy)\$/, 'is scrypt-crypt ($7$/$gy$), not supported'],
  [/^\$2x\$/, 'is bcrypt $2x$, the variant marking hashes made by a buggy implementation'],
  [/^\$(md5|sha1|3)\$/, 'is a legacy crypt(3) format, too fast to resist brute force'],
  [/^[./0-9A-Za-z]{13}$/, 'is traditional DES crypt: 8-character passwords and a 12-bit salt'],
];

/**
 * Parses `{SCHEME}hash` or a bare crypt string. Total: never throws; a refused or malformed hash
 * is a `ParseFailure` for the configuration loader to report with file, line and key.
 */
export function parsePasswordHash(text: string): PasswordHash | ParseFailure {
  const t = text.trim();
  if (t === '') return fail('HASH_EMPTY', 'the password hash is empty');
  if (!t.startsWith('{')) return parseCrypt(t, 'CRYPT');
  const close = t.indexOf('}');
  if (close < 0) return fail('HASH_MALFORMED', 'the scheme prefix has no closing "}"');
  const scheme = t.slice(1, close).toUpperCase();
  const rest = t.slice(close + 1);
  if (/\.(B64|BASE64|HEX)$/.test(scheme)) {
    return fail('HASH_SCHEME_REFUSED', `scheme {${scheme}}: encoding suffixes are not supported`);
  }
  const refused = REFUSED[scheme];
  if (refused !== undefined) return fail('HASH_SCHEME_REFUSED', `scheme {${scheme}} refused: it ${refused}`);
  switch (scheme) {
    case 'ARGON2ID':
    case 'ARGON2I':
      return parseArgon2(rest, scheme);
    case 'BLF-CRYPT':
    case 'BCRYPT': // not a Dovecot name, but the configuration accepts it (engine/config/secrets.ts)
      return parseBcrypt(rest);
    case 'SHA512-CRYPT':
    case 'SHA256-CRYPT':
      return parseShaCrypt(rest, scheme);
    case 'CRYPT':
      return parseCrypt(rest, 'CRYPT');
    default:
      return fail('HASH_SCHEME_UNKNOWN', `unknown password scheme {${scheme}}`);
  }
}

function parseCrypt(s: string, label: string): PasswordHash | ParseFailure {
  if (s.startsWith('$argon2id$')) return parseArgon2(s, 'ARGON2ID');
  if (s.startsWith('$argon2i$')) return parseArgon2(s, 'ARGON2I');
  if (/^\$2[aby]\$/.test(s)) return parseBcrypt(s);
  if (s.startsWith('$6$')) return parseShaCrypt(s, 'SHA512-CRYPT');
  if (s.startsWith('$5$')) return parseShaCrypt(s, 'SHA256-CRYPT');
  for (const [re, why] of REFUSED_CRYPT) {
    if (re.test(s)) return fail('HASH_SCHEME_REFUSED', `{${label}} hash refused: it ${why}`);
  }
  return fail('HASH_MALFORMED', `not a recognised crypt hash (expected $argon2id$, $2y$, $6$ or $5$ …)`);
}

const B64 = /^[A-Za-z0-9+/]+$/; // PHC strings: standard alphabet, no padding

function parseArgon2(s: string, scheme: 'ARGON2ID' | 'ARGON2I'): PasswordHash | ParseFailure {
  const variant = scheme.toLowerCase();
  const m = /^\$(argon2id|argon2i)\$v=(\d+)\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$([^$]+)\$([^$]+)$/.exec(s);
  if (m === null || m[1] !== variant) {
    return fail('HASH_MALFORMED', `{${scheme}} expects $${variant}$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`);
  }
  const [, , v, mem, passes, lanes, salt = '', hash = ''] = m;
  if (v !== '19') return fail('HASH_MALFORMED', `{${scheme}} version v=${v} is not supported (only v=19, Argon2 1.3)`);
  const memoryKiB = Number(mem);
  const t = Number(passes);
  const p = Number(lanes);
  if (!B64.test(salt) || !B64.test(hash)) return fail('HASH_MALFORMED', `{${scheme}} salt or hash is not base64`);
  const saltBytes = Buffer.from(salt, 'base64').length;
  const hashBytes = Buffer.from(hash, 'base64').length;
  // RFC 9106 §3.1: salt ≥ 8 bytes, lanes ≥ 1, memory ≥ 8·lanes KiB; tags below 16 bytes are truncations.
  if (saltBytes < 8 || saltBytes > 64) return fail('HASH_MALFORMED', `{${scheme}} salt is ${saltBytes} bytes (8 to 64 allowed)`);
  if (hashBytes < 16 || hashBytes > 64) return fail('HASH_MALFORMED', `{${scheme}} hash is ${hashBytes} bytes (16 to 64 allowed)`);
  if (t < 1 || p < 1 || memoryKiB < 8 * p) return fail('HASH_MALFORMED', `{${scheme}} parameters m=${mem},t=${passes},p=${lanes} are below RFC 9106's minimums`);
  if (memoryKiB > MAX_ARGON2_MEMORY_KIB || t > MAX_ARGON2_PASSES || p > MAX_ARGON2_PARALLELISM) {
    return fail(
      'HASH_COST_TOO_HIGH',
      `{${scheme}} cost m=${mem},t=${passes},p=${lanes} exceeds the limits m ≤ ${MAX_ARGON2_MEMORY_KIB} KiB, t ≤ ${MAX_ARGON2_PASSES}, p ≤ ${MAX_ARGON2_PARALLELISM}: every login attempt would cost that much memory and CPU`,
      'regenerate it with `doveadm pw -s ARGON2ID` (m=65536,t=3,p=1)',
    );
  }
  return { kind: 'argon2', scheme, memoryKiB, passes: t, parallelism: p, encoded: s };
}

function parseBcrypt(s: string): PasswordHash | ParseFailure {
  // $2y$NN$ + 22 salt characters + 31 hash characters, bcrypt's own base64 alphabet.
  const m = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/.exec(s);
  if (m === null) return fail('HASH_MALFORMED', '{BLF-CRYPT} expects $2y$<cost>$ followed by 53 characters of [./A-Za-z0-9]');
  const cost = Number(m[1]);
  if (cost < 4 || cost > 31) return fail('HASH_MALFORMED', `{BLF-CRYPT} cost ${cost} is outside bcrypt's 4 to 31`);
  if (cost > MAX_BCRYPT_COST) {
    return fail('HASH_COST_TOO_HIGH', `{BLF-CRYPT} cost ${cost} exceeds the limit of ${MAX_BCRYPT_COST}: every login attempt would cost 2^${cost} rounds`, 'regenerate it with `doveadm pw -s BLF-CRYPT -r 10`');
  }
  return { kind: 'bcrypt', scheme: 'BLF-CRYPT', cost, encoded: s };
}

function parseShaCrypt(s: string, scheme: 'SHA512-CRYPT' | 'SHA256-CRYPT'): PasswordHash | ParseFailure {
  const id = scheme === 'SHA512-CRYPT' ? '6' : '5';
  const len = scheme === 'SHA512-CRYPT' ? 86 : 43;
  const re = new RegExp(`^\\$${id}\\$(?:rounds=(\\d{1,9})\\$)?[./0-9A-Za-z]{1,16}\\$[./0-9A-Za-z]{${len}}$`);
  const m = re.exec(s);
  if (m === null) return fail('HASH_MALFORMED', `{${scheme}} expects $${id}$[rounds=N$]<salt of 1-16>$<${len} characters>`);
  const rounds = m[1] === undefined ? 5000 : Number(m[1]);
  // crypt(3) never writes rounds below 1000 (it clamps), so such a string was not made by it.
  if (rounds < 1000) return fail('HASH_MALFORMED', `{${scheme}} rounds=${rounds} is below SHA-crypt's minimum of 1000`);
  if (rounds > MAX_SHA_CRYPT_ROUNDS) {
    return fail('HASH_COST_TOO_HIGH', `{${scheme}} rounds=${rounds} exceeds the limit of ${MAX_SHA_CRYPT_ROUNDS}: every login attempt would cost that many rounds`, `regenerate it with \`doveadm pw -s ${scheme}\``);
  }
  return { kind: 'sha-crypt', scheme, rounds, encoded: s };
}
