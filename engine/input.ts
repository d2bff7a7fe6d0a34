import addressparser from 'nodemailer/lib/addressparser';
import { normaliseDomain, parentDomains, parsePath, type NormalisedAddress } from './address.js';
import { canonicalIp, parseIp } from './config/ip.js';
import { addressBits } from './data.js';
import { EngineError } from './errors.js';
import type { Facts, HeaderFacts, Stage } from './types.js';

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

export interface PolicyInput {
  stage: Stage;
  explain?: true;
  connection: {
    local: { ip: string; port: number };
    remote: { ip: string; family: '4' | '6'; bits: string };
  };
  connector?: string;
  tls: { active: boolean; version?: string; cipher?: string; client_cert: ClientCertInput };
  helo?: { name: string; present: boolean; valid: boolean };
  auth?: { mechanism: string; login: string; result: string };
  counters: {
    logon_failures: number;
    connections_from_source: number;
    connections_total: number;
    messages_last_minute: number;
  };
  mail?: { address: NormalisedAddress; size: number | null; smtputf8: boolean };
  rcpt?: NormalisedAddress;
  accepted_rcpt_count: number;
  message?: {
    from: NormalisedAddress[];
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

function fromAddresses(values: string[]): NormalisedAddress[] {
  const out: NormalisedAddress[] = [];
  for (const value of values) {
    const parsed = addressparser(value, { flatten: true });
    const list = Array.isArray(parsed) ? parsed : [parsed];
    if (list.length === 0) out.push(parsePath(value)); // unparseable: judged (and refused) as written
    for (const entry of list) {
      if (out.length >= INPUT_LIMITS.fromAddresses) throw bad(`more than ${INPUT_LIMITS.fromAddresses} From addresses`);
      out.push(parsePath(entry.address ?? ''));
    }
  }
  return out;
}

function certNames(facts: Facts): ClientCertInput {
  const cert = facts.tls?.client_cert;
  if (cert === undefined || cert === null) return { present: false, verified: false, names: {} };
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

export function buildInput(stage: Stage, facts: Facts, explain = false): PolicyInput {
  if (typeof facts !== 'object' || facts === null) throw bad('facts must be an object');
  const local = parseEndpoint(facts.local, 'local');
  const remote = parseEndpoint(facts.remote, 'remote');
  const numeric = parseIp(remote.ip);
  if (numeric === null) throw bad(`remote: "${remote.ip}" is not an IP address`);
  const tls = facts.tls ?? null;
  const input: PolicyInput = {
    stage,
    connection: {
      local,
      remote: { ip: remote.ip, family: numeric.family === 4 ? '4' : '6', bits: addressBits(numeric.value, numeric.family) },
    },
    tls: {
      active: tls !== null,
      ...(tls?.version === undefined ? {} : { version: str(tls.version, 'tls.version') }),
      ...(tls?.cipher === undefined ? {} : { cipher: str(tls.cipher, 'tls.cipher') }),
      client_cert: certNames(facts),
    },
    counters: {
      logon_failures: count(facts.counters?.logon_failures, 'counters.logon_failures'),
      connections_from_source: count(facts.counters?.connections_from_source, 'counters.connections_from_source'),
      connections_total: count(facts.counters?.connections_total, 'counters.connections_total'),
      messages_last_minute: count(facts.counters?.messages_last_minute, 'counters.messages_last_minute'),
    },
    accepted_rcpt_count: count(facts.accepted_rcpt_count, 'accepted_rcpt_count'),
  };
  if (explain) input.explain = true;
  if (typeof facts.connector === 'string') input.connector = facts.connector;
  if (facts.helo !== undefined) {
    const name = str(facts.helo, 'helo').trim();
    const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(name);
    const valid = literal === null ? normaliseDomain(name) !== null : canonicalIp(literal[1] ?? '') !== null;
    input.helo = { name, present: name !== '', valid: name !== '' && valid };
  }
  if (facts.auth !== undefined && facts.auth !== null) {
    input.auth = {
      mechanism: str(facts.auth.mechanism, 'auth.mechanism').toUpperCase(),
      login: str(facts.auth.user, 'auth.user').toLowerCase(),
      result: facts.auth.result ?? 'success',
    };
  }
  if (facts.mail_from !== undefined) {
    const size = paramValue(facts.mail_params, 'SIZE');
    const sizeNumber = size === undefined || size === null || size === true ? null : Number(size);
    if (sizeNumber !== null && (!Number.isSafeInteger(sizeNumber) || sizeNumber < 0)) throw bad(`SIZE=${String(size)} is not a byte count`);
    const utf8 = paramValue(facts.mail_params, 'SMTPUTF8');
    input.mail = {
      address: parsePath(str(facts.mail_from, 'mail_from')),
      size: sizeNumber,
      smtputf8: utf8 !== undefined && utf8 !== false && utf8 !== null,
    };
  }
  if (facts.rcpt_to !== undefined) input.rcpt = parsePath(str(facts.rcpt_to, 'rcpt_to'));
  if (facts.headers !== undefined || facts.message_size !== undefined || facts.header_size !== undefined) {
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
