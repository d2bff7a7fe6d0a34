import { certificateDomain, normaliseDomain, parentDomains } from './address.js';
import { addressBits } from './data.js';
import { INPUT_LIMITS, Memo, addressEntry, bad, count, str, type PolicyAddress } from './input-parts.js';
import { canonicalIp, isParseFailure, parseHostPort, parseIp } from './ip.js';
import { messageSummary, type MessageSummary } from './message-input.js';
import type { AuthFacts, ConnectFacts, CounterFacts, Facts, Stage, TlsFacts } from './types.js';
import { asciiLower, asciiUpper, isRecord } from './util.js';

/**
 * Facts → policy input. Pure. Everything that needs parsing is parsed here (endpoints,
 * addresses, IDNs, header senders, certificate names) so the Rego only compares and looks up.
 * Inputs are bounded: oversized facts are refused (the engine then tempfails), never truncated,
 * because a truncated header list could let a forged trust header through the firewall.
 *
 * The input is assembled as JSON text from fragments serialised once (per session, per
 * transaction, per address), since serialising and parsing JSON is a large part of a
 * decision's cost. Two shapes:
 *   - the session input (`mta/session`): `connection` with the client's address bits, `tls`
 *     (only `active`) and `auth` — exactly what the session document may depend on, and the
 *     engine's cache key for it;
 *   - a stage input: `stage`, the session input's fields (with the client certificate), in
 *     cached mode the session document as `session` (inline mode: the Rego computes it), and
 *     the stage's own facts.
 */

export { INPUT_LIMITS, policyAddress, policySender, type PolicyAddress } from './input-parts.js';
export { messageSummary, withMessageSize, type MessageSummary } from './message-input.js';

// --- the session part: endpoints, TLS, AUTH ----------------------------------------------------

export interface ConnectionInput {
  readonly local: { readonly ip: string; readonly port: number };
  readonly remote: { readonly ip: string; readonly family: '4' | '6'; readonly bits: string };
}

/**
 * `ip:port` or `[v6]:port` (engine/ip.ts parseHostPort, the parser the configuration's
 * bindings use too), a bare IP for the remote end, or an object `{ip, port}`.
 */
export function parseEndpoint(value: unknown, what: 'local' | 'remote'): { ip: string; port: number } {
  let ip: string | null;
  let port: number | null;
  if (isRecord(value)) {
    ip = canonicalIp(str(value['ip'], `${what}.ip`));
    if (ip === null) throw bad(`${what}.ip: "${String(value['ip']).slice(0, 64)}" is not an IP address`);
    port = value['port'] === undefined ? null : count(value['port'], `${what}.port`);
    if (port !== null && (port < 1 || port > 65535)) throw bad(`${what}.port: ${port} is not a port (1-65535)`);
  } else {
    const text = str(value, what).trim();
    const hp = parseHostPort(text, { portOptional: true });
    if (isParseFailure(hp)) throw bad(/is not an IP address/.test(hp.error) ? `${what}: "${text.slice(0, 64)}" is not an IP address` : `${what}: ${hp.error}`);
    ip = hp.text;
    port = hp.port;
  }
  // The local port selects the connector: without it no connector can match, and guessing one
  // (or answering "no connector") would be wrong. It is the adapter's error: a tempfail.
  if (what === 'local' && port === null) {
    throw bad(`local: "${typeof value === 'string' ? value.slice(0, 64) : ip}" has no port (write ip:port; the port selects the connector)`);
  }
  return { ip, port: port ?? 0 };
}

const connectionMemo = new Memo<ConnectionInput | string>(4096);

/** The parsed endpoints (memoised on the raw strings). Throws EngineError. */
export function parseConnection(local: unknown, remote: unknown): ConnectionInput {
  const build = (): ConnectionInput => {
    const l = parseEndpoint(local, 'local');
    const r = parseEndpoint(remote, 'remote');
    const numeric = parseIp(r.ip);
    const lfam = parseIp(l.ip)?.family;
    if (numeric === null || lfam === undefined) throw bad('unparseable endpoint');
    if (lfam !== numeric.family) throw bad(`local ${l.ip} and remote ${r.ip} are of different address families`);
    const bits = addressBits(numeric.value, numeric.family);
    return { local: l, remote: { ip: r.ip, family: numeric.family === 4 ? '4' : '6', bits } };
  };
  if (typeof local !== 'string' || typeof remote !== 'string') return build();
  const r = connectionMemo.get(`${local} ${remote}`, () => {
    try {
      return build();
    } catch (e) {
      return (e as Error).message;
    }
  });
  if (typeof r === 'string') throw bad(r);
  return r;
}

export interface ClientCertInput {
  readonly present: true;
  readonly verified: boolean;
  /** Names the certificate covers: each DNS name and its parent domains. */
  readonly names: Readonly<Record<string, true>>;
}

export interface TlsInput {
  readonly active: true;
  readonly client_cert?: ClientCertInput;
}

/** The CN of a subject DN (RFC 4514 or OpenSSL /-form); an escaped separator is not an RDN start. */
const SUBJECT_CN = /(?:^|(?<!\\)[,/+])\s*CN=((?:\\.|[^,/+\\])+)/i;

function certNames(cert: unknown): ClientCertInput | undefined {
  if (cert === undefined || cert === null) return undefined;
  if (!isRecord(cert)) throw bad('tls.client_cert must be an object');
  let dns: unknown = cert['san_dns'] === undefined ? [] : cert['san_dns'];
  if (!Array.isArray(dns)) throw bad('tls.client_cert.san_dns must be a list of names');
  if (dns.length === 0 && cert['subject'] !== undefined) {
    const cn = SUBJECT_CN.exec(str(cert['subject'], 'tls.client_cert.subject'));
    if (cn?.[1] !== undefined) dns = [cn[1].trim()];
  }
  const list = dns as unknown[];
  if (list.length > INPUT_LIMITS.certNames) throw bad(`more than ${INPUT_LIMITS.certNames} certificate names`);
  const names: Record<string, true> = {};
  for (const name of list) {
    const domain = certificateDomain(str(name, 'certificate name'));
    if (domain === null) continue;
    names[domain] = true;
    for (const parent of parentDomains(domain)) names[parent] = true;
  }
  return { present: true, verified: cert['verified'] === true, names };
}

/** Cleartext is `tls` absent, null or false; TLS is an object, nothing else. */
export function tlsInput(tls: TlsFacts | null | undefined | false): TlsInput | null {
  const t: unknown = tls;
  if (t === undefined || t === null || t === false) return null;
  if (!isRecord(t)) throw bad('tls must be an object (or null / false for cleartext)');
  const cert = certNames(t['client_cert']);
  // Version and cipher are not read by the policy; only the fact of TLS and the client certificate.
  return cert === undefined ? { active: true } : { active: true, client_cert: cert };
}

export interface AuthInput {
  readonly mechanism: string;
  readonly login: string;
  readonly result: 'success' | 'failure' | 'tempfail';
  readonly mta?: true;
}

/** A login as the credential check saw it; empty, padded or control characters are refused. */
function loginName(value: unknown): string {
  const login = str(value, 'auth.user');
  // eslint-disable-next-line no-control-regex
  if (login === '' || login !== login.trim() || /[\x00-\x1f\x7f]/.test(login)) {
    throw bad('auth.user must be a non-empty login without surrounding spaces or control characters');
  }
  return asciiLower(login);
}

export function authInput(auth: AuthFacts | null | undefined): AuthInput | null {
  const a: unknown = auth;
  if (a === undefined || a === null) return null;
  if (!isRecord(a)) throw bad('auth must be an object {mechanism, user, result}');
  const result = a['result'] === undefined ? 'success' : a['result'];
  if (result !== 'success' && result !== 'failure' && result !== 'tempfail') {
    throw bad('auth.result must be "success", "failure" or "tempfail"');
  }
  if (a['by_mta'] !== undefined && typeof a['by_mta'] !== 'boolean') throw bad('auth.by_mta must be true or false');
  const out: AuthInput = { mechanism: asciiUpper(str(a['mechanism'], 'auth.mechanism')), login: loginName(a['user']), result };
  return a['by_mta'] === true ? { ...out, mta: true } : out;
}

/**
 * What the session document is computed from, serialised once: the engine's cache key and the
 * whole input of `mta/session`. A stage input carries the same fields (`connection` with the
 * address bits, `tls` with the client certificate, `auth`) in both modes, so a `package mta.ext`
 * rule reads the same input whether or not the session document is cached.
 */
export class SessionInput {
  /** JSON of the restricted input `{connection, tls?, auth?}`. */
  readonly json: string;
  /** The same fields as every stage input carries them (tls with the client certificate). */
  readonly stage: string;

  constructor(
    readonly connection: ConnectionInput,
    readonly tls: TlsInput | null,
    readonly auth: AuthInput | null,
  ) {
    const conn = `"connection":${JSON.stringify(connection)}`;
    const auth_ = auth === null ? '' : `"auth":${JSON.stringify(auth)}`;
    this.json = `{${[conn, tls === null ? '' : '"tls":{"active":true}', auth_].filter((s) => s !== '').join(',')}}`;
    this.stage = [conn, tls === null ? '' : `"tls":${JSON.stringify(tls)}`, auth_].filter((s) => s !== '').join(',');
  }

  static fromFacts(facts: ConnectFacts & { readonly auth?: AuthFacts | null }): SessionInput {
    if (!isRecord(facts)) throw bad('facts must be an object');
    return SessionInput.of(parseConnection(facts.local, facts.remote), tlsInput(facts.tls), authInput(facts.auth));
  }

  /**
   * As the constructor; the input of a cleartext, unauthenticated session is kept per (memoised)
   * connection, since every new session starts that way and serialising it costs microseconds.
   */
  static of(connection: ConnectionInput, tls: TlsInput | null, auth: AuthInput | null): SessionInput {
    if (tls !== null || auth !== null) return new SessionInput(connection, tls, auth);
    let input = plainInputs.get(connection);
    if (input === undefined) {
      input = new SessionInput(connection, null, null);
      plainInputs.set(connection, input);
    }
    return input;
  }
}

/** The cleartext, unauthenticated SessionInput of each connection (see SessionInput.of). */
const plainInputs = new WeakMap<ConnectionInput, SessionInput>();

// --- the stage part ----------------------------------------------------------------------------

function helo(value: unknown): string {
  const name = str(value, 'helo').trim();
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(name);
  const valid = name !== '' && (literal === null ? normaliseDomain(name) !== null : canonicalIp(literal[1] ?? '') !== null);
  return JSON.stringify({ name, present: name !== '', valid });
}

const COUNTER_KEYS = ['logon_failures', 'connections_from_source', 'connections_total', 'messages_last_minute'] as const;

function counters(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (!isRecord(value)) throw bad('counters must be an object');
  for (const key of Object.keys(value)) {
    if (!(COUNTER_KEYS as readonly string[]).includes(key)) throw bad(`counters.${key} is not a counter (${COUNTER_KEYS.join(', ')})`);
  }
  const parts: string[] = [];
  for (const key of COUNTER_KEYS) {
    const n = count(value[key], `counters.${key}`);
    if (n > 0) parts.push(`"${key}":${n}`);
  }
  return parts.length === 0 ? '' : `"counters":{${parts.join(',')}}`;
}

/** MAIL FROM parameters by upper-case keyword; a keyword given twice (in any case) is refused. */
function mailParams(params: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (params === undefined || params === null) return out;
  if (!isRecord(params)) throw bad('mail_params must be an object');
  for (const [k, v] of Object.entries(params)) {
    const key = asciiUpper(k);
    if (out.has(key)) throw bad(`mail_params: ${key} is given twice`);
    out.set(key, v);
  }
  return out;
}

/** SIZE=<digits> (RFC 1870); a number is accepted as is. */
function sizeParam(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw bad(`SIZE=${String(value)} is not a byte count`);
  return n;
}

/** SMTPUTF8 is a keyword: present (true, null or "") or absent (undefined or false). */
function keywordParam(value: unknown, name: string): boolean {
  if (value === undefined || value === false) return false;
  if (value === true || value === null || value === '') return true;
  throw bad(`${name} takes no value`);
}

/** `"mail":…` for a transaction. */
export function mailJson(mailFrom: unknown, params: unknown): string {
  const address = addressEntry(str(mailFrom, 'mail_from'), true).json;
  const p = mailParams(params);
  const size = sizeParam(p.get('SIZE'));
  const utf8 = keywordParam(p.get('SMTPUTF8'), 'SMTPUTF8');
  return `"mail":{"address":${address}${size === undefined ? '' : `,"size":${size}`}${utf8 ? ',"smtputf8":true' : ''}}`;
}

/** What each stage reads beyond the session part. */
const STAGE_READS: Record<Stage, { helo?: true; mail?: true; rcpt?: true; message?: 'headers' | 'eom' }> = {
  connect: {},
  ehlo: { helo: true },
  auth: {},
  mail: { mail: true },
  rcpt: { mail: true, rcpt: true },
  headers: { mail: true, message: 'headers' },
  eom: { mail: true, message: 'eom' },
};

export interface StageParts {
  /** `"mail":…` when the caller already has it (a session's transaction). */
  readonly mail?: string;
  /** The message summary when the caller already has it. */
  readonly message?: MessageSummary;
}

export interface BuildOptions {
  readonly explain?: boolean;
  /** The session document's JSON: cached mode. Absent: inline mode (the Rego computes it). */
  readonly sessionDoc?: string;
}

/** A stage input as JSON text. Throws EngineError for bad facts. */
export interface StageInput {
  readonly json: string;
  readonly message?: MessageSummary;
  /** RCPT: the recipient as normalised. */
  readonly rcpt?: PolicyAddress;
}

export function stageInputJson(stage: Stage, facts: Facts, session: SessionInput, opts: BuildOptions = {}, parts: StageParts = {}): StageInput {
  const reads = STAGE_READS[stage];
  const out: string[] = [`"stage":"${stage}"`];
  if (opts.explain === true) out.push('"explain":true');
  // Cached mode adds the session document; the Rego then reads connector, principals and rights
  // from it and never recomputes them.
  if (opts.sessionDoc !== undefined) out.push(`"session":${opts.sessionDoc}`);
  out.push(session.stage);
  const c = counters(facts.counters);
  if (c !== '') out.push(c);
  if (reads.helo === true && facts.helo !== undefined && facts.helo !== null) out.push(`"helo":${helo(facts.helo)}`);
  if (stage === 'auth' && session.auth === null) throw bad('the auth stage needs auth');
  if (reads.mail === true) {
    if (parts.mail !== undefined) out.push(parts.mail);
    else {
      if (facts.mail_from === undefined || facts.mail_from === null) throw bad(`the ${stage} stage needs mail_from`);
      out.push(mailJson(facts.mail_from, facts.mail_params));
    }
  }
  let rcpt: PolicyAddress | undefined;
  if (reads.rcpt === true) {
    if (facts.rcpt_to === undefined || facts.rcpt_to === null) throw bad('the rcpt stage needs rcpt_to');
    const entry = addressEntry(str(facts.rcpt_to, 'rcpt_to'), false);
    rcpt = entry.address;
    out.push(`"rcpt":${entry.json}`);
    const accepted = count(facts.accepted_rcpt_count, 'accepted_rcpt_count');
    if (accepted > 0) out.push(`"accepted_rcpt_count":${accepted}`);
  }
  let message: MessageSummary | undefined;
  if (reads.message !== undefined) {
    if (facts.headers === undefined || facts.headers === null) throw bad(`the ${stage} stage needs headers`);
    message = parts.message ?? messageSummary(facts.headers, facts.header_size, facts.message_size, reads.message === 'eom');
    out.push(message.json);
  }
  const json = `{${out.join(',')}}`;
  return { json, ...(message === undefined ? {} : { message }), ...(rcpt === undefined ? {} : { rcpt }) };
}

/** The whole inline-mode input as an object (for `opa eval`, tests and the golden agreement test). */
export function buildInput(stage: Stage, facts: Facts, opts: BuildOptions = {}): PolicyInput {
  return JSON.parse(stageInputJson(stage, facts, SessionInput.fromFacts(facts), opts).json) as PolicyInput;
}

/** The restricted input of `mta/session` as an object. */
export function buildSessionInput(facts: Facts): object {
  return JSON.parse(SessionInput.fromFacts(facts).json) as object;
}

/** The input document's shape (see policies/README.md); built as JSON text, typed for tests. */
export interface PolicyInput {
  stage: Stage;
  explain?: true;
  session?: Record<string, unknown>;
  connection: { local: { ip: string; port: number }; remote: { ip: string; family: '4' | '6'; bits: string } };
  tls?: TlsInput;
  helo?: { name: string; present: boolean; valid: boolean };
  auth?: AuthInput;
  counters?: Partial<Record<keyof CounterFacts, number>>;
  mail?: { address: PolicyAddress; size?: number; smtputf8?: true };
  rcpt?: PolicyAddress;
  accepted_rcpt_count?: number;
  message?: {
    from: PolicyAddress[];
    header_names: string[];
    received_count: number;
    header_size: number;
    size: number;
    invalid?: true;
  };
}
