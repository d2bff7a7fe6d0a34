/**
 * Keys that name credentials: TLS certificate and key files, the passwd-file, and password
 * hashes. Files are checked when the configuration loads (relative paths are relative to the
 * configuration file); messages never quote a key or a hash.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { isParseFailure } from '../ip.js';
import { code } from './issues.js';
import { readBounded, resolvePath } from './files.js';
import { parsePasswordHash } from '../../adapters/submission/password-hash.js';
import { BAD, named, obj, refine, required, type Decoder } from './decode.js';
import { string } from './scalars.js';
import type { SourceRef } from './types.js';

/** A certificate chain and its private key, as absolute paths (both checked at load). */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly source: SourceRef;
}

/** Largest certificate or key file read. */
const MAX_PEM = 1024 * 1024;

/** A path written in the configuration, resolved against the configuration file. */
const path = (configFile: string): Decoder<{ written: string; abs: string }> =>
  refine(string({ minLength: 1, emptyFix: 'write the path of the file' }), (p) => ({ written: p.trim(), abs: resolvePath(p.trim(), configFile) }));

function load<T>(abs: string, written: string, what: string, parse: (pem: Buffer) => T): T | { error: string; fix: string } {
  const bytes = readBounded(abs, MAX_PEM);
  if (isParseFailure(bytes)) return { error: `cannot read the ${what} file ${code(written)}: ${bytes.error}`, fix: bytes.fix ?? 'check the path' };
  try {
    return parse(bytes);
  } catch {
    // The library's message may quote the file: name the file instead.
    return { error: `${code(written)} does not hold a PEM ${what}`, fix: `name a PEM-encoded ${what} file` };
  }
}

/** `{ cert, key }`: both files readable, the certificate parses, and the key is its key. */
export function tlsFiles(configFile: string): Decoder<TlsFiles> {
  const shape = obj(
    {
      cert: required(path(configFile), 'add `cert: certs/server.pem`', { description: 'PEM certificate (chain) file; relative to the configuration file.' }),
      key: required(path(configFile), 'add `key: certs/server.key`', { description: 'PEM private key file of the certificate; relative to the configuration file.' }),
    },
    { description: 'A TLS certificate and its key.', noun: 'this tls section' },
  );
  return named('tls', refine(shape, (t, at) => {
    const cert = load(t.cert.abs, t.cert.written, 'certificate', (pem) => new X509Certificate(pem));
    const key = load<KeyObject>(t.key.abs, t.key.written, 'private key', (pem) => createPrivateKey(pem));
    if (isParseFailure(cert)) at.issues.add(t.where.value('cert'), cert.error, cert.fix);
    if (isParseFailure(key)) at.issues.add(t.where.value('key'), key.error, key.fix);
    if (isParseFailure(cert) || isParseFailure(key)) return BAD;
    if (!cert.checkPrivateKey(key)) {
      at.issues.add(t.where.value('key'), `the key ${code(t.key.written)} does not belong to the certificate ${code(t.cert.written)}`, 'name the key the certificate was issued for');
      return BAD;
    }
    return { cert: t.cert.abs, key: t.key.abs, source: at.issues.ref(at) };
  }));
}

/** A file that must exist and be readable now (its contents are read by whoever uses it). */
export function readableFile(configFile: string, what: string): Decoder<string> {
  return refine(path(configFile), (p, at) => {
    const r = readBounded(p.abs, 0);
    return isParseFailure(r) ? at.fail(`cannot read the ${what} ${code(p.written)}: ${r.error}`, r.fix) : p.abs;
  });
}

/** Password schemes accepted, as Dovecot names them (doc.dovecot.org, "Password Schemes"). */
export const PASSWORD_SCHEMES = ['ARGON2ID', 'BCRYPT', 'BLF-CRYPT', 'SHA512-CRYPT'] as const;

const SCHEME_LIST = PASSWORD_SCHEMES.map((x) => `{${x}}`).join(', ');

/**
 * A password hash with its Dovecot `{SCHEME}` prefix, scheme in upper case. The hash is parsed
 * as the submission listener will verify it (adapters/submission/password-hash.ts: form, salt
 * and cost limits), so a bad one fails at load with file, line and key. No message quotes it.
 */
export const passwordHash = (): Decoder<string> => ({
  decode(node, at) {
    const m = node.kind === 'scalar' && typeof node.value === 'string' ? /^\{([A-Za-z0-9-]{1,40})\}(.+)$/s.exec(node.value) : null;
    const scheme = m?.[1]?.toUpperCase();
    if (m === null || scheme === undefined) return at.fail('a password must be a string {SCHEME}hash (the value is not shown)', `start it with one of ${SCHEME_LIST}`);
    if (!(PASSWORD_SCHEMES as readonly string[]).includes(scheme)) return at.fail(`password scheme ${code(`{${m[1] ?? ''}}`)} is not supported`, `use one of ${SCHEME_LIST}`);
    const hash = `{${scheme}}${m[2] ?? ''}`;
    const parsed = parsePasswordHash(hash);
    return parsed.kind === 'invalid' ? at.fail(`the password hash is not usable: ${parsed.message} (the value is not shown)`, parsed.fix) : hash;
  },
  schema: () => ({ type: 'string', pattern: '^\\{[A-Za-z0-9-]+\\}.+$' }),
});
