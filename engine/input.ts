import addressparser from 'nodemailer/lib/addressparser';
import { normaliseDomain, parentDomains, parsePath, type NormalisedAddress } from './address.js';
import { canonicalIp, parseIp } from './config/ip.js';
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
 * `connection.remote.bits` is sent only when the connector must be (re)selected.
 */
export interface PolicyInput {
  /** For extension rules; the shipped policy knows its stage from the entrypoint. */
  stage: Stage;
  explain?: true;
  connection: {
    /** `port` only when selecting (the local IP is also read for `user@[ip]` literals). */
    local: { ip: string; port?: number };
    /** Only when selecting. */
    remote?: { family: '4' | '6'; bits: string };
  };
  connector?: string;
  tls?: { active: true; client_cert?: ClientCertInput };
  helo?: { name: string; present: boolean; valid: boolean };
  auth?: { mechanism?: string; login: string; result: string };
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

function headerList(headers: HeaderFacts | undefined): [string, string][] {
  if (headers === undefined) return [];
  const out: [string, string][] = [];
  const push = (name: unknown, value: unknown): void => {
    if (out.length >= INPUT_LIMITS.headerFields) throw bad(`more than ${INPUT_LIMITS.headerFields} header fields`);
    out.push([str(name, 'header name'), typeof value === 'string' ? value : str(value, `header ${String(name)}`)]);
  };
  if (Array.isArray(headers)) {
    for (const pair of headers as readonly (readonly [string, string])[]) {
      if (!Array.isArray(pair) || pair.length !== 2) throw bad('headers must be [name, value] pairs');
      push(pair[0], pair[1]);
    }
  } else {
    for (const [name, value] of Object.entries(headers as Record<string, string | readonly string[]>)) {
      if (Array.isArray(value)) for (const v of value as readonly unknown[]) push(name, v);
      else push(name, value);
    }
  }
  return out;
}

const fromMemo = new Memo<string[]>(1024);

/** The mailboxes of one From header value (groups flattened); unparseable text stays as written. */
function fromMailboxes(value: string): string[] {
  return fromMemo.get(value, () => {
    const parsed = addressparser(value, { flatten: true });
    const list = Array.isArray(parsed) ? parsed : [parsed];
    return list.length === 0 ? [value] : list.map((entry) => entry.address ?? '');
  });
}

function fromAddresses(values: string[]): PolicyAddress[] {
  const out: PolicyAddress[] = [];
  for (const value of values) {
    for (const mailbox of fromMailboxes(value)) {
      if (out.length >= INPUT_LIMITS.fromAddresses) throw bad(`more than ${INPUT_LIMITS.fromAddresses} From addresses`);
      out.push(policyAddress(mailbox));
    }
  }
  return out;
}

function certNames(facts: Facts): ClientCertInput | undefined {
  const cert = facts.tls?.client_cert;
  if (cert === undefined || cert === null) return undefined;
  let dns = cert.san_dns ?? [];
  if (dns.length === 0 && cert.subject !== undefined) {
    const cn = /(?:^|[,/]\s*)CN=([^,/]+)/i.exec(cert.subject);
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
  return { present: true, verified: cert.verified === true, names };
}

function paramValue(params: Facts['mail_params'], key: string): string | number | boolean | null | undefined {
  if (params === undefined) return undefined;
  for (const [k, v] of Object.entries(params)) if (k.toUpperCase() === key) return v;
  return undefined;
}

const STAGE_READS: Record<Stage, { helo?: true; mail?: true; rcpt?: true; message?: true }> = {
  connect: {},
  ehlo: { helo: true },
  auth: {},
  mail: { mail: true },
  rcpt: { mail: true, rcpt: true },
  headers: { mail: true, message: true },
  eom: { mail: true, message: true },
};

export interface BuildOptions {
  readonly explain?: boolean;
  /** True when the policy data knows this connector (then the selection bits are not sent). */
  readonly knownConnector?: (name: string) => boolean;
}

function endpoint(value: Facts['local'] | Facts['remote'], what: string): { ip: string; port: number } {
  if (typeof value !== 'string') return parseEndpoint(value, what);
  const r = endpointMemo.get(value, () => {
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

export function buildInput(stage: Stage, facts: Facts, options: BuildOptions | boolean = {}): PolicyInput {
  const opts: BuildOptions = typeof options === 'boolean' ? { explain: options } : options;
  if (typeof facts !== 'object' || facts === null) throw bad('facts must be an object');
  const reads = STAGE_READS[stage];
  const local = endpoint(facts.local, 'local');
  const remote = remoteAddress(clientIp(facts));
  const connector = typeof facts.connector === 'string' ? facts.connector : undefined;
  const select = stage === 'connect' || connector === undefined || opts.knownConnector?.(connector) !== true;
  const input: PolicyInput = {
    stage,
    connection: select ? { local, remote: { family: remote.family, bits: remote.bits } } : { local: { ip: local.ip } },
  };
  if (opts.explain === true) input.explain = true;
  if (connector !== undefined) input.connector = connector;
  const tls = facts.tls ?? null;
  if (tls !== null) {
    const cert = certNames(facts);
    // Version and cipher are not read by the policy; only the fact of TLS and the client certificate.
    input.tls = cert === undefined ? { active: true } : { active: true, client_cert: cert };
  }
  if (facts.counters !== undefined) {
    const counters: NonNullable<PolicyInput['counters']> = {};
    for (const key of ['logon_failures', 'connections_from_source', 'connections_total', 'messages_last_minute'] as const) {
      const n = count(facts.counters[key], `counters.${key}`);
      if (n > 0) counters[key] = n;
    }
    if (Object.keys(counters).length > 0) input.counters = counters;
  }
  if (reads.helo === true && facts.helo !== undefined) {
    const name = str(facts.helo, 'helo').trim();
    const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(name);
    const valid = literal === null ? normaliseDomain(name) !== null : canonicalIp(literal[1] ?? '') !== null;
    input.helo = { name, present: name !== '', valid: name !== '' && valid };
  }
  if (facts.auth !== undefined && facts.auth !== null) {
    const login = str(facts.auth.user, 'auth.user').toLowerCase();
    const result = facts.auth.result ?? 'success';
    // The mechanism matters only at AUTH itself.
    input.auth =
      stage === 'auth' ? { mechanism: str(facts.auth.mechanism, 'auth.mechanism').toUpperCase(), login, result } : { login, result };
  }
  if (reads.mail === true && facts.mail_from !== undefined) {
    const mail: NonNullable<PolicyInput['mail']> = { address: policyAddress(str(facts.mail_from, 'mail_from')) };
    const size = paramValue(facts.mail_params, 'SIZE');
    if (size !== undefined && size !== null && size !== true) {
      const n = Number(size);
      if (!Number.isSafeInteger(n) || n < 0) throw bad(`SIZE=${String(size)} is not a byte count`);
      mail.size = n;
    }
    const utf8 = paramValue(facts.mail_params, 'SMTPUTF8');
    if (utf8 !== undefined && utf8 !== false && utf8 !== null) mail.smtputf8 = true;
    input.mail = mail;
  }
  if (reads.rcpt === true) {
    if (facts.rcpt_to !== undefined) input.rcpt = policyAddress(str(facts.rcpt_to, 'rcpt_to'));
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
      headerBytes += name.length + value.length + 4; // "Name: value\r\n"
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
