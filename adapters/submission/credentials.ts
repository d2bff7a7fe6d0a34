/**
 * Checking SMTP AUTH credentials against the configured back ends, in this order:
 *
 * 1. a `password` hash on the configuration's user that lists the login (name, address or login);
 * 2. the Dovecot passwd-file (`identities.passwd_file`), by exact name, then ASCII-lower-cased;
 * 3. Dovecot SASL over its auth socket (`identities.dovecot_auth`), when set.
 *
 * A local hash that knows the login decides; Dovecot is asked only about logins no local hash
 * knows. A login nobody knows is a failure after a verification of the same cost as a real one,
 * so timing does not tell unknown users from wrong passwords. Empty identities and passwords,
 * and a SASL authorization identity other than the login (RFC 4616 §2: acting as someone else),
 * fail without asking anyone. Anything that keeps the check from running (a Dovecot that is
 * down, a verifier that crashed) is `tempfail`, answered 454 4.7.0 — never a success.
 *
 * Passwords are never logged, stored beyond the call, or put in a result.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../engine/config/types.js';
import { asciiLower } from '../../engine/util.js';
import { DovecotAuthClient, type DovecotAuthOptions } from './dovecot-auth.js';
import { readPasswdFile, type PasswdEntry, type PasswdIssue } from './passwd-file.js';
import { MAX_PASSWORD_BYTES, parsePasswordHash, verifyPassword, type PasswordHash } from './passwords.js';

/** One AUTH to check, as the listener received it. */
export interface CredentialRequest {
  readonly mechanism: string;
  /** The authentication identity (SASL authcid). */
  readonly username: string;
  /** SASL authzid, when the client sent one. */
  readonly authzid?: string;
  readonly password: string;
  readonly remoteIp: string;
  readonly remotePort?: number;
  readonly localIp?: string;
  readonly localPort?: number;
  readonly secured: boolean;
  /** Session id, for correlating Dovecot's log with ours. */
  readonly session?: string;
}

/** The outcome; `user` is the login to report to the policy, `reason` is for the log only. */
export type CredentialResult =
  | { readonly result: 'success'; readonly user: string; readonly backend: Backend }
  | { readonly result: 'failure'; readonly reason: string; readonly backend: Backend | 'none' }
  | { readonly result: 'tempfail'; readonly reason: string; readonly backend: Backend | 'none' };

export type Backend = 'config' | 'passwd-file' | 'dovecot';

/** A SHA512-CRYPT hash of a password nobody has: verified for unknown logins, so they cost the same. */
const DUMMY = parsePasswordHash('{SHA512-CRYPT}$6$SeAeD05vU7zskKqZ$zLnr1qijFV3.76AlHHK4hgW3n5LvujTFci632drkmrj5a/uBNuIQ3XQ/f4q22tkRpO0GlnhL2YN4PLoHCOfx11');

export interface CredentialStoreOptions {
  /** Dovecot client options beside the address (timeouts); the address comes from the configuration. */
  readonly dovecot?: Omit<DovecotAuthOptions, 'address'>;
  /** Told about passwd-file lines that were skipped (the messages name users, never hashes). */
  readonly onIssue?: (issue: PasswdIssue) => void;
  /**
   * How long a successful verification against a local hash is remembered (Dovecot's
   * auth_cache_ttl): a client that reconnects per message (most MUAs) is not made to pay a
   * deliberately slow hash each time. Only successes are kept, as a keyed HMAC of the password
   * under a per-process random key, never the password. 0 turns it off. Default 60 s.
   */
  readonly cacheTtlMs?: number;
}

/** Most remembered successes (Dovecot auth_cache_size is bytes; this is entries). */
const CACHE_ENTRIES = 10_000;

/** Recently verified (hash, login, password) triples, as HMACs. */
class SuccessCache {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { readonly mac: Buffer; readonly until: number }>();

  constructor(private readonly ttlMs: number) {}

  private mac(encoded: string, password: string): Buffer {
    return createHmac('sha256', this.key).update(encoded).update('\0').update(password).digest();
  }

  has(id: string, encoded: string, password: string): boolean {
    const e = this.entries.get(id);
    if (e === undefined) return false;
    if (e.until < Date.now()) {
      this.entries.delete(id);
      return false;
    }
    return timingSafeEqual(e.mac, this.mac(encoded, password));
  }

  add(id: string, encoded: string, password: string): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(id, { mac: this.mac(encoded, password), until: Date.now() + this.ttlMs });
  }
}

/** The credential back ends of one configuration. Immutable; build a new one to reload. */
export class CredentialStore {
  private constructor(
    private readonly hashes: ReadonlyMap<string, PasswordHash>,
    private readonly passwd: ReadonlyMap<string, PasswdEntry>,
    private readonly dovecot: DovecotAuthClient | undefined,
    private readonly cache: SuccessCache,
  ) {}

  /**
   * Reads the configuration's back ends: the users' hashes (already validated by the loader) and
   * the passwd-file (read now; rejects with PasswdFileError when it cannot be read). Dovecot is
   * connected on first use.
   */
  static async open(config: Config, options: CredentialStoreOptions = {}): Promise<CredentialStore> {
    const hashes = new Map<string, PasswordHash>();
    for (const u of config.users) {
      if (u.password === undefined) continue;
      const h = parsePasswordHash(u.password);
      if (h.kind === 'invalid') continue; // the loader refuses these; nothing to verify against
      for (const login of u.logins) hashes.set(login, h);
    }
    let passwd: ReadonlyMap<string, PasswdEntry> = new Map();
    if (config.passwdFile !== undefined) {
      const file = await readPasswdFile(config.passwdFile);
      for (const issue of file.issues) options.onIssue?.(issue);
      passwd = file.entries;
    }
    const dovecot = config.dovecotAuth === undefined ? undefined : new DovecotAuthClient({ ...options.dovecot, address: config.dovecotAuth });
    return new CredentialStore(hashes, passwd, dovecot, new SuccessCache(options.cacheTtlMs ?? 60_000));
  }

  /** Whether any back end is configured (without one, every AUTH fails). */
  get configured(): boolean {
    return this.hashes.size > 0 || this.passwd.size > 0 || this.dovecot !== undefined;
  }

  /** Checks one login. Never rejects. */
  async check(req: CredentialRequest): Promise<CredentialResult> {
    if (req.username === '' || req.password === '') return { result: 'failure', reason: 'empty user name or password', backend: 'none' };
    if (Buffer.byteLength(req.password) > MAX_PASSWORD_BYTES) return { result: 'failure', reason: 'password too long', backend: 'none' };
    if (req.authzid !== undefined && req.authzid !== '' && req.authzid !== req.username) {
      return { result: 'failure', reason: 'authorization identity differs from the login', backend: 'none' };
    }
    try {
      const configured = this.hashes.get(asciiLower(req.username));
      if (configured !== undefined) return await this.verified(configured, req, 'config');
      const entry = this.passwd.get(req.username) ?? this.passwd.get(asciiLower(req.username));
      if (entry !== undefined) {
        const r = await this.verified(entry.hash, req, 'passwd-file');
        if (r.result === 'success' && entry.disabled !== undefined) return { result: 'failure', reason: `account disabled (${entry.disabled.reason})`, backend: 'passwd-file' };
        return r.result === 'success' ? { ...r, user: entry.user } : r;
      }
      if (this.dovecot !== undefined) return await this.askDovecot(req);
      if (DUMMY.kind !== 'invalid') await verifyPassword(DUMMY, req.password);
      return { result: 'failure', reason: 'unknown user', backend: 'none' };
    } catch (e) {
      return { result: 'tempfail', reason: e instanceof Error ? e.message : String(e), backend: 'none' };
    }
  }

  private async askDovecot(req: CredentialRequest): Promise<CredentialResult> {
    const r = await (this.dovecot as DovecotAuthClient).authenticate({
      username: req.username,
      password: req.password,
      remoteIp: req.remoteIp,
      secured: req.secured,
      ...(req.authzid === undefined || req.authzid === '' ? {} : { authzid: req.authzid }),
      ...(req.remotePort === undefined ? {} : { remotePort: req.remotePort }),
      ...(req.localIp === undefined ? {} : { localIp: req.localIp }),
      ...(req.localPort === undefined ? {} : { localPort: req.localPort }),
      ...(req.session === undefined ? {} : { session: req.session }),
    });
    if (r.result === 'success') return { result: 'success', user: r.user, backend: 'dovecot' };
    if (r.result === 'failure') return { result: 'failure', reason: r.reason ?? 'Dovecot refused the login', backend: 'dovecot' };
    return { result: 'tempfail', reason: r.reason, backend: 'dovecot' };
  }

  private async verified(hash: PasswordHash, req: CredentialRequest, backend: Backend): Promise<CredentialResult> {
    const id = `${backend}\0${asciiLower(req.username)}`;
    const encoded = hash.encoded;
    if (this.cache.has(id, encoded, req.password)) return { result: 'success', user: req.username, backend };
    if (!(await verifyPassword(hash, req.password))) return { result: 'failure', reason: 'wrong password', backend };
    this.cache.add(id, encoded, req.password);
    return { result: 'success', user: req.username, backend };
  }

  /** Closes the Dovecot connection, if any. */
  close(): void {
    this.dovecot?.close();
  }
}


