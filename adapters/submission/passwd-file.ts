/**
 * Dovecot passwd-file users (doc.dovecot.org "Passwd-file"): one user per line,
 * `user:password:uid:gid:gecos:home:shell:extra_fields`, or the short form `user:password`.
 * Only the user, the password and the extra fields that *refuse* a login matter here; uid, gid,
 * gecos, home and shell are ignored. Lines starting with `#` and blank lines are skipped.
 *
 * Reload-safe: every call reads and parses afresh and returns a new value; nothing is cached.
 */
import { open } from 'node:fs/promises';
import { MtaPolicyError } from '../../engine/errors.js';
import { parsePasswordHash, type PasswordHash } from './passwords.js';

/** Default ceiling on the file size: users files are small; a huge one is a mistake or an attack. */
export const DEFAULT_MAX_PASSWD_FILE_BYTES = 4 * 1024 * 1024;
/** Longest line accepted, in characters. */
export const MAX_PASSWD_LINE = 64 * 1024;

/** One usable user. */
export interface PasswdEntry {
  readonly user: string;
  readonly hash: PasswordHash;
  /** 1-based line in the file. */
  readonly line: number;
  /**
   * Set when the extra fields forbid logging in (`nologin`, `noauthenticate`): Dovecot refuses
   * such a user (auth_protocol "OK … nologin"), and so must we. `reason` is `reason=` if given.
   */
  readonly disabled?: { readonly reason: string };
  /** The extra fields, `key=value` (a bare key has the value `''`). */
  readonly extraFields: Readonly<Record<string, string>>;
}

export type PasswdIssueCode =
  | 'PASSWD_LINE_TOO_LONG'
  | 'PASSWD_NO_PASSWORD'
  | 'PASSWD_BAD_USER'
  | 'PASSWD_BAD_HASH'
  | 'PASSWD_DUPLICATE_USER'
  | 'PASSWD_FIELD_IGNORED';

/** A problem on one line. `error` lines are left out of `entries`; `warning` lines are kept. */
export interface PasswdIssue {
  readonly line: number;
  readonly severity: 'error' | 'warning';
  readonly code: PasswdIssueCode;
  readonly message: string;
  readonly fix?: string;
}

/** The parsed file: users by exact name (first occurrence wins, as in Dovecot) and every issue. */
export interface PasswdFile {
  readonly entries: ReadonlyMap<string, PasswdEntry>;
  readonly issues: readonly PasswdIssue[];
}

/** The file itself could not be used (unreadable, too large). Per-line problems are issues instead. */
export class PasswdFileError extends MtaPolicyError {
  declare readonly code: 'PASSWD_FILE_UNREADABLE' | 'PASSWD_FILE_TOO_LARGE';
  constructor(code: 'PASSWD_FILE_UNREADABLE' | 'PASSWD_FILE_TOO_LARGE', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * Extra fields that restrict *where* or *how* a user may log in in Dovecot. mta-policy does not
 * enforce them (its connectors do that job), so they are reported rather than silently dropped.
 */
const RESTRICTIONS_NOT_ENFORCED = ['allow_nets', 'allow_real_nets', 'proxy', 'proxy_maybe', 'host'];

// Control characters, whitespace and ':' never belong in a login name.
const BAD_USER = /[\s:\p{Cc}]/u;

/** Parses passwd-file text. Total: never throws. */
export function parsePasswdFile(text: string): PasswdFile {
  const entries = new Map<string, PasswdEntry>();
  const issues: PasswdIssue[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    if (raw.length > MAX_PASSWD_LINE) {
      issues.push({ line, severity: 'error', code: 'PASSWD_LINE_TOO_LONG', message: `line is longer than ${MAX_PASSWD_LINE} characters` });
      continue;
    }
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const fields = raw.split(':');
    const user = fields[0] ?? '';
    const password = fields[1];
    if (user === '' || BAD_USER.test(user)) {
      issues.push({ line, severity: 'error', code: 'PASSWD_BAD_USER', message: 'the user name is empty or contains whitespace or control characters' });
      continue;
    }
    if (password === undefined || password === '') {
      issues.push({ line, severity: 'error', code: 'PASSWD_NO_PASSWORD', message: `user ${user} has no password hash, so cannot log in`, fix: 'write user:{ARGON2ID}… (from `doveadm pw -s ARGON2ID`)' });
      continue;
    }
    const hash = parsePasswordHash(password);
    if (hash.kind === 'invalid') {
      issues.push({ line, severity: 'error', code: 'PASSWD_BAD_HASH', message: `user ${user}: ${hash.message}`, fix: hash.fix });
      continue;
    }
    if (entries.has(user)) {
      issues.push({ line, severity: 'warning', code: 'PASSWD_DUPLICATE_USER', message: `user ${user} is listed again (first on line ${entries.get(user)?.line}); this line is ignored` });
      continue;
    }
    const extraFields = parseExtraFields(fields.slice(7).join(':'));
    for (const key of RESTRICTIONS_NOT_ENFORCED) {
      if (key in extraFields) {
        issues.push({ line, severity: 'warning', code: 'PASSWD_FIELD_IGNORED', message: `user ${user}: extra field ${key} is not enforced by mta-policy`, fix: 'restrict logins with connector remote_ip_ranges instead' });
      }
    }
    const off = ['nologin', 'noauthenticate'].some((k) => k in extraFields && !/^(n|no|0|false)$/i.test(extraFields[k] ?? ''));
    entries.set(user, {
      user,
      hash,
      line,
      extraFields,
      ...(off ? { disabled: { reason: extraFields['reason'] ?? 'account disabled' } } : {}),
    });
  }
  return { entries, issues };
}

/** Extra fields: space-separated `key=value` or bare `key` (Dovecot "Extra fields"). */
function parseExtraFields(s: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const f of s.split(/\s+/)) {
    if (f === '') continue;
    const eq = f.indexOf('=');
    const key = (eq < 0 ? f : f.slice(0, eq)).toLowerCase();
    // Dovecot's `userdb_` prefix names userdb fields; they never affect authentication.
    if (key.startsWith('userdb_')) continue;
    out[key] = eq < 0 ? '' : f.slice(eq + 1);
  }
  return out;
}

/**
 * Reads and parses a passwd-file, refusing files over `maxBytes` without reading them whole.
 * Rejects with `PasswdFileError` when the file cannot be read or is too large.
 */
export async function readPasswdFile(path: string, opts: { maxBytes?: number } = {}): Promise<PasswdFile> {
  const max = opts.maxBytes ?? DEFAULT_MAX_PASSWD_FILE_BYTES;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new PasswdFileError('PASSWD_FILE_UNREADABLE', `cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  try {
    // Read in chunks up to max+1 bytes: fstat's size may change under us (the file being rewritten).
    const chunks: Buffer[] = [];
    let n = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, max + 1 - n));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, n);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      n += bytesRead;
      if (n > max) throw new PasswdFileError('PASSWD_FILE_TOO_LARGE', `${path} is larger than ${max} bytes`);
    }
    return parsePasswdFile(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    if (e instanceof PasswdFileError) throw e;
    throw new PasswdFileError('PASSWD_FILE_UNREADABLE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  } finally {
    await fh.close();
  }
}
