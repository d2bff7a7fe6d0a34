import addressparser from 'nodemailer/lib/addressparser';
import { normaliseDomain, parentDomains, parsePath, type NormalisedAddress } from './address.js';
import { canonicalIp, parseIp } from './ip.js';
import { addressBits } from './data.js';
import { EngineError } from './errors.js';
import type { CounterFacts, Facts, HeaderFacts, Stage } from './types.js';

/**
 * Facts → policy input. Pure. Everything that needs parsing is parsed here (endpoints,
 * addresses, IDNs, header From, certificate names) so the Rego only compares and looks up.
 * Inputs are bounded: oversized facts are refused (the engine then tempfails), never truncated,
 * because a truncated header list could let a forged trust header through the firewall.
 */

/** Caps on what one decision reads. */
export const INPUT_LIMITS = {
  headerFields: 2000,
  /** One header field's value (folded lines included). */
  headerValueBytes: 65536,
  /** The whole header block, when the adapter does not say. */
  headerBytes: 1048576,
  fromAddresses: 100,
  certNames: 100,
  stringLength: 4096,
} as const;

/**
 * An address as the policy reads it: booleans appear only when true, to keep the JSON that
 * crosses into WASM small (its size dominates evaluation cost).
 */
export interface PolicyAddress {
  domain: string;
  key: string;
  parents: readonly string[];
  literal?: string;
  null?: true;
  invalid?: true;
  non_ascii?: true;
  routing?: Partial<Record<keyof NormalisedAddress['routing'], true>>;
}

function toPolicyAddress(a: NormalisedAddress): PolicyAddress {
  const out: PolicyAddress = { domain: a.domain, key: a.key, parents: a.parents };
  if (a.literal !== null) out.literal = a.literal;
  if (a.null) out.null = true;
  if (!a.valid) out.invalid = true;
  if (!a.ascii) out.non_ascii = true;
  const routing: PolicyAddress['routing'] = {};
  for (const [flag, on] of Object.entries(a.routing)) if (on) routing[flag as keyof NormalisedAddress['routing']] = true;
  if (Object.keys(routing).length > 0) out.routing = routing;
  return out;
}

/**
 * Adapters ask about the same endpoints and the same MAIL FROM many times per session;
 * normalising them (IDNA, IP parsing) costs more than the policy evaluation, so results are
 * memoised. Bounded: a full cache is simply cleared.
 */
class Memo<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v === undefined) {
      if (this.map.size >= this.limit) this.map.clear();
      v = make();
      this.map.set(key, v);
    }
    return v;
  }
}

const addressMemo = new Memo<PolicyAddress>(4096);
const endpointMemo = new Memo<{ ip: string; port: number } | string>(4096);
const remoteMemo = new Memo<{ ip: string; family: '4' | '6'; bits: string } | null>(4096);

export function policyAddress(raw: string): PolicyAddress {
  return addressMemo.get(raw, () => toPolicyAddress(parsePath(raw)));
}

/**
 * The policy input. Only what the stage reads is sent; absent means false / zero / none.
 */
export interface PolicyInput {
  /** For extension rules; the shipped policy knows its stage from the entrypoint. */
  stage: Stage;
  explain?: true;
  /** The connector is selected from these at every stage; nothing the adapter says overrides it. */
  connection: {
    local: { ip: string; port: number };
    remote: { family: '4' | '6'; bits: string };
  };
  tls?: { active: true; client_cert?: ClientCertInput };
  helo?: { name: string; present: boolean; valid: boolean };
  auth?: { mechanism: string; login: string; result: 'success' | 'failure' | 'tempfail' };
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
  };
}

interface ClientCertInput {
  present: boolean;
  verified: boolean;
  /** Names the certificate covers: each DNS name and its parent domains. */
  names: Record<string, true>;
}

function bad(message: string): EngineError {
  return new EngineError('ENGINE_INPUT_INVALID', message);
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw bad(`${what} must be a string`);
  if (value.length > INPUT_LIMITS.stringLength) throw bad(`${what} is longer than ${INPUT_LIMITS.stringLength} characters`);
  return value;
}

function count(value: unknown, what: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw bad(`${what} must be a non-negative integer`);
  return value;
}

/** `ip:port`, `[v6]:port`, or a bare IP (port 0). */
export function parseEndpoint(value: Facts['local'] | Facts['remote'], what: string): { ip: string; port: number } {
  let ipText: string;
  let port: number;
  if (typeof value === 'object' && value !== null) {
    ipText = str(value.ip, `${what}.ip`);
    port = value.port === undefined ? 0 : count(value.port, `${what}.port`);
  } else {
    const text = str(value, what).trim();
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
    const v4 = /^([0-9.]+):(\d+)$/.exec(text);
    if (bracketed !== null) {
      ipText = bracketed[1] ?? '';
      port = bracketed[2] === undefined ? 0 : Number(bracketed[2]);
    } else if (v4 !== null) {
      ipText = v4[1] ?? '';
      port = Number(v4[2]);
    } else {
      ipText = text;
      port = 0;
    }
  }
  const ip = canonicalIp(ipText);
  if (ip === null) throw bad(`${what}: "${ipText}" is not an IP address`);
  if (port > 65535) throw bad(`${what}: port ${port} is out of range`);
  return { ip, port };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerList(headers: HeaderFacts | undefined | null): [string, string][] {
  if (headers === undefined || headers === null) return [];
  if (!Array.isArray(headers) && !isRecord(headers)) throw bad('headers must be an object or a list of [name, value] pairs');
  const out: [string, string][] = [];
  const push = (name: unknown, value: unknown): void => {
    if (out.length >= INPUT_LIMITS.headerFields) throw bad(`more than ${INPUT_LIMITS.headerFields} header fields`);
    if (typeof value !== 'string') throw bad(`header ${String(name)} must have a string value`);
    if (Buffer.byteLength(value) > INPUT_LIMITS.headerValueBytes) throw bad(`header ${String(name)} is longer than ${INPUT_LIMITS.headerValueBytes} bytes`);
    out.push([str(name, 'header name'), value]);
  };
  if (Array.isArray(headers)) {
    for (const pair of headers as readonly unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2) throw bad('headers must be [name, value] pairs');
      push(pair[0], pair[1]);
    }
  } else {
    for (const [name, value] of Object.entries(headers)) {
      if (Array.isArray(value)) for (const v of value as readonly unknown[]) push(name, v);
      else push(name, value);
    }
  }
  return out;
}

/** An address the policy must refuse: what a From mailbox without an address becomes. */
const UNUSABLE: PolicyAddress = { domain: '', key: '', parents: [], invalid: true };

const fromMemo = new Memo<string[]>(1024);

/** The mailboxes of one From header value (groups flattened); unparseable text stays as written. */
function fromMailboxes(value: string): string[] {
  const parse = (): string[] => {
    const parsed = addressparser(value, { flatten: true });
    const list = Array.isArray(parsed) ? parsed : [parsed];
    return list.length === 0 ? [value] : list.map((entry) => entry.address ?? '');
  };
  // Memoise only ordinary values: a huge From must not pin memory.
  return value.length <= 1024 ? fromMemo.get(value, parse) : parse();
}

function fromAddresses(values: string[]): PolicyAddress[] {
  const out: PolicyAddress[] = [];
  for (const value of values) {
    for (const mailbox of fromMailboxes(value)) {
      if (out.length >= INPUT_LIMITS.fromAddresses) throw bad(`more than ${INPUT_LIMITS.fromAddresses} From addresses`);
      // A From mailbox is never the null sender: no address (`From: ceo`) is a refusal.
      out.push(mailbox.trim() === '' ? UNUSABLE : policyAddress(mailbox));
    }
  }
  return out;
}

/** The CN of a subject DN (RFC 4514 or OpenSSL /-form); an escaped separator is not an RDN start. */
const SUBJECT_CN = /(?:^|(?<!\\)[,/+])\s*CN=((?:\\.|[^,/+\\])+)/i;

function certNames(cert: unknown): ClientCertInput | undefined {
  if (cert === undefined || cert === null) return undefined;
  if (!isRecord(cert)) throw bad('tls.client_cert must be an object');
  let dns: unknown[] = cert['san_dns'] === undefined ? [] : (cert['san_dns'] as unknown[]);
  if (!Array.isArray(dns)) throw bad('tls.client_cert.san_dns must be a list of names');
  if (dns.length === 0 && cert['subject'] !== undefined) {
    const cn = SUBJECT_CN.exec(str(cert['subject'], 'tls.client_cert.subject'));
    if (cn?.[1] !== undefined) dns = [cn[1].trim()];
  }
  if (dns.length > INPUT_LIMITS.certNames) throw bad(`more than ${INPUT_LIMITS.certNames} certificate names`);
  const names: Record<string, true> = {};
  for (const name of dns) {
    const domain = normaliseDomain(str(name, 'certificate name').replace(/^\*\./, ''));
    if (domain === null) continue;
    names[domain] = true;
    for (const parent of parentDomains(domain)) names[parent] = true;
  }
  return { present: true, verified: cert['verified'] === true, names };
}

function paramValue(params: unknown, key: string): unknown {
  if (params === undefined || params === null) return undefined;
  if (!isRecord(params)) throw bad('mail_params must be an object');
  for (const [k, v] of Object.entries(params)) if (k.toUpperCase() === key) return v;
  return undefined;
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

/** What each stage reads (beyond endpoints, TLS, AUTH and counters), and what it cannot do without. */
const STAGE_READS: Record<Stage, { helo?: true; mail?: 'required'; rcpt?: 'required'; message?: true }> = {
  connect: {},
  ehlo: { helo: true },
  auth: {},
  mail: { mail: 'required' },
  rcpt: { mail: 'required', rcpt: 'required' },
  headers: { mail: 'required', message: true },
  eom: { mail: 'required', message: true },
};

export interface BuildOptions {
  readonly explain?: boolean;
}

function endpoint(value: unknown, what: string): { ip: string; port: number } {
  if (typeof value !== 'string') return parseEndpoint(value as Facts['local'], what);
  const r = endpointMemo.get(`${what} ${value}`, () => {
    try {
      return parseEndpoint(value, what);
    } catch (e) {
      return (e as Error).message;
    }
  });
  if (typeof r === 'string') throw bad(r);
  return r;
}

function remoteAddress(ip: string): { ip: string; family: '4' | '6'; bits: string } {
  const r = remoteMemo.get(ip, () => {
    const numeric = parseIp(ip);
    return numeric === null ? null : { ip, family: numeric.family === 4 ? '4' : '6', bits: addressBits(numeric.value, numeric.family) };
  });
  if (r === null) throw bad(`remote: "${ip}" is not an IP address`);
  return r;
}

/** The client's canonical IP (memoised). Throws EngineError for garbage. */
export function clientIp(facts: Facts): string {
  return endpoint(facts.remote, 'remote').ip;
}

/** A login as the credential check saw it; empty, padded or control characters are refused. */
function loginName(value: unknown): string {
  const login = str(value, 'auth.user');
  // eslint-disable-next-line no-control-regex
  if (login === '' || login !== login.trim() || /[\x00-\x1f\x7f]/.test(login)) {
    throw bad('auth.user must be a non-empty login without surrounding spaces or control characters');
  }
  return login.toLowerCase();
}

function authFacts(auth: unknown): NonNullable<PolicyInput['auth']> {
  if (!isRecord(auth)) throw bad('auth must be an object {mechanism, user, result}');
  const result = auth['result'] === undefined ? 'success' : auth['result'];
  if (result !== 'success' && result !== 'failure' && result !== 'tempfail') {
    throw bad('auth.result must be "success", "failure" or "tempfail"');
  }
  return { mechanism: str(auth['mechanism'], 'auth.mechanism').toUpperCase(), login: loginName(auth['user']), result };
}

export function buildInput(stage: Stage, facts: Facts, opts: BuildOptions = {}): PolicyInput {
  if (!isRecord(facts)) throw bad('facts must be an object');
  const reads = STAGE_READS[stage];
  const local = endpoint(facts.local, 'local');
  const remote = remoteAddress(clientIp(facts));
  if (parseIp(local.ip)?.family !== (remote.family === '4' ? 4 : 6)) {
    throw bad(`local ${local.ip} and remote ${remote.ip} are of different address families`);
  }
  const input: PolicyInput = {
    stage,
    connection: { local, remote: { family: remote.family, bits: remote.bits } },
  };
  if (opts.explain === true) input.explain = true;
  // Cleartext is `tls` absent, null or false; TLS is an object, nothing else.
  const tls: unknown = facts.tls;
  if (tls !== undefined && tls !== null && tls !== false) {
    if (!isRecord(tls)) throw bad('tls must be an object (or null / false for cleartext)');
    const cert = certNames(tls['client_cert']);
    // Version and cipher are not read by the policy; only the fact of TLS and the client certificate.
    input.tls = cert === undefined ? { active: true } : { active: true, client_cert: cert };
  }
  if (facts.counters !== undefined && facts.counters !== null) {
    if (!isRecord(facts.counters)) throw bad('counters must be an object');
    const counters: NonNullable<PolicyInput['counters']> = {};
    for (const key of ['logon_failures', 'connections_from_source', 'connections_total', 'messages_last_minute'] as const) {
      const n = count(facts.counters[key], `counters.${key}`);
      if (n > 0) counters[key] = n;
    }
    if (Object.keys(counters).length > 0) input.counters = counters;
  }
  if (reads.helo === true && facts.helo !== undefined && facts.helo !== null) {
    const name = str(facts.helo, 'helo').trim();
    const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(name);
    const valid = literal === null ? normaliseDomain(name) !== null : canonicalIp(literal[1] ?? '') !== null;
    input.helo = { name, present: name !== '', valid: name !== '' && valid };
  }
  if (facts.auth !== undefined && facts.auth !== null) input.auth = authFacts(facts.auth);
  if (reads.mail !== undefined) {
    if (facts.mail_from === undefined || facts.mail_from === null) throw bad(`the ${stage} stage needs mail_from`);
    const mail: NonNullable<PolicyInput['mail']> = { address: policyAddress(str(facts.mail_from, 'mail_from')) };
    const size = sizeParam(paramValue(facts.mail_params, 'SIZE'));
    if (size !== undefined) mail.size = size;
    if (keywordParam(paramValue(facts.mail_params, 'SMTPUTF8'), 'SMTPUTF8')) mail.smtputf8 = true;
    input.mail = mail;
  }
  if (reads.rcpt !== undefined) {
    if (facts.rcpt_to === undefined || facts.rcpt_to === null) throw bad('the rcpt stage needs rcpt_to');
    input.rcpt = policyAddress(str(facts.rcpt_to, 'rcpt_to'));
    const accepted = count(facts.accepted_rcpt_count, 'accepted_rcpt_count');
    if (accepted > 0) input.accepted_rcpt_count = accepted;
  }
  if (reads.message === true) {
    const headers = headerList(facts.headers);
    const names = new Set<string>();
    let received = 0;
    let headerBytes = 0;
    const from: string[] = [];
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      names.add(lower);
      if (lower === 'received') received++;
      if (lower === 'from') from.push(value);
      headerBytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 4; // "Name: value\r\n"
    }
    if (facts.header_size === undefined && headerBytes > INPUT_LIMITS.headerBytes) {
      throw bad(`the header block is larger than ${INPUT_LIMITS.headerBytes} bytes`);
    }
    input.message = {
      from: fromAddresses(from),
      header_names: [...names].sort(),
      received_count: received,
      header_size: facts.header_size === undefined ? headerBytes + 2 : count(facts.header_size, 'header_size'),
      size: count(facts.message_size, 'message_size'),
    };
  }
  return input;
}
