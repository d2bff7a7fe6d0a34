import { RIGHTS, type Config, type ConnectorConfig, type Reply } from './config/types.js';
import { ADDRESS_BITS } from './ip.js';
import { PERMISSION_GROUPS, SERVER_GROUPS } from './permissions.js';
import { REPLY_CATALOGUE, type CatalogueReply } from './replies.js';
import { asciiLower } from './util.js';

/**
 * Compile a validated Config into the OPA data document the Rego reads (`data.config`).
 *
 * Everything a stage looks up is indexed here, once, so no stage scans a list at request
 * time: accepted domains by name, logins by name, ACLs by principal, and connector ranges by
 * address-prefix bits (see policies/mta/connector.rego).
 */
export function compileData(config: Config): { config: PolicyData } {
  return {
    config: {
      server: {
        fqdn: config.server.fqdn,
        dialect: config.server.dialect,
        local_addresses: toSet(config.server.localAddresses),
        domain_secure: toSet(config.server.domainSecureDomains),
        organization_header_prefixes: config.server.organizationHeaderPrefixes.map((p) => p.toLowerCase()),
        forest_header_prefixes: config.server.forestHeaderPrefixes.map((p) => p.toLowerCase()),
      },
      domains: compileDomains(config),
      ...compileIdentities(config),
      unlisted_logins: config.unlistedLogins,
      connectors: Object.fromEntries(
        config.connectors.filter((c) => c.enabled).map((c) => [c.name, compileConnector(c)]),
      ),
      selection: compileSelection(config.connectors.filter((c) => c.enabled)),
      replies: compileReplies(config.server.replies),
      right_order: RIGHTS,
      right_index: RIGHT_INDEX,
      right_names: RIGHT_NAMES,
    },
  };
}

export interface PolicyData {
  server: {
    fqdn: string;
    dialect: string;
    local_addresses: Record<string, true>;
    domain_secure: Record<string, true>;
    organization_header_prefixes: string[];
    forest_header_prefixes: string[];
  };
  domains: { exact: Record<string, string>; wildcard: Record<string, string> };
  logins: Record<string, string>;
  users: Record<string, CompiledUser>;
  unlisted_logins: 'reject' | 'authenticated';
  connectors: Record<string, CompiledConnector>;
  selection: Record<'4' | '6', Record<string, SelectionBinding>>;
  replies: Record<'exchange' | 'rfc', Record<string, CompiledReply>>;
  right_order: readonly string[];
  right_index: Readonly<Record<string, number>>;
  right_names: Readonly<Record<string, string>>;
}

/** Each right's position in the policy's rights string (RIGHTS order). */
export const RIGHT_INDEX: Readonly<Record<string, number>> = Object.fromEntries(RIGHTS.map((r, i) => [r, i]));

/**
 * Each right by a stable key the Rego refers to (`ms-Exch-SMTP-Submit` → `smtp_submit`):
 * derived from RIGHTS, so the Exchange spelling exists once.
 */
export const RIGHT_NAMES: Readonly<Record<string, string>> = Object.fromEntries(
  RIGHTS.map((r) => [r.replace(/^ms-Exch-/, '').toLowerCase().replace(/-/g, '_'), r]),
);

/** The names in a rights string ("0"/"1" per right in RIGHTS order), sorted; null when malformed. */
export function rightsFromString(s: string): string[] | null {
  if (s.length !== RIGHTS.length || !/^[01]*$/.test(s)) return null;
  return RIGHTS.filter((_, i) => s[i] === '1').sort();
}

interface CompiledUser {
  name: string;
  principals: string[];
  addresses: Record<string, true>;
  send_as: Record<string, true>;
}

export interface CompiledConnector {
  name: string;
  usage: string;
  dialect: string;
  fqdn: string;
  banner: string | null;
  auth: {
    none: boolean;
    tls: boolean;
    basic: boolean;
    basic_require_tls: boolean;
    external_authoritative: boolean;
  };
  sasl: readonly string[];
  require_tls: boolean;
  domain_secure: boolean;
  max_message_size: number | null;
  max_header_size: number | null;
  max_recipients_per_message: number | null;
  max_inbound_connection: number | null;
  max_inbound_connection_per_source: number | null;
  message_rate_limit: number | null;
  message_rate_source: string;
  max_logon_failures: number;
  max_hop_count: number;
  require_ehlo_domain: boolean;
  acl: Record<string, { allow: string[]; deny: string[] }>;
  replies: Record<string, CompiledReply>;
}

interface SelectionEntry {
  connector: string;
  range: string;
  binding: string;
  /** Lower is more specific: smaller range first, then the specific local IP, then a stable id. */
  score: number;
}

interface SelectionBinding {
  lengths: number[];
  prefixes: Record<string, SelectionEntry>;
}

function toSet(values: readonly string[]): Record<string, true> {
  return Object.fromEntries(values.map((v) => [v, true] as const));
}

function compileDomains(config: Config): PolicyData['domains'] {
  const exact: Record<string, string> = {};
  const wildcard: Record<string, string> = {};
  for (const d of config.acceptedDomains) (d.wildcard ? wildcard : exact)[d.domain] = d.type;
  return { exact, wildcard };
}

function compileIdentities(config: Config): Pick<PolicyData, 'logins' | 'users'> {
  const logins: Record<string, string> = {};
  const users: Record<string, CompiledUser> = {};
  for (const u of config.users) {
    const key = asciiLower(u.name);
    const principals = new Set(['authenticated', `user:${key}`]);
    for (const g of u.groups) {
      const group = asciiLower(g);
      principals.add(`group:${group}`);
      const server = SERVER_GROUPS[group];
      if (server !== undefined) principals.add(server);
    }
    users[key] = {
      name: u.name,
      principals: [...principals].sort(),
      addresses: toSet(u.addresses),
      send_as: toSet(u.sendAs),
    };
    for (const login of u.logins) logins[login] = key;
  }
  return { logins, users };
}

function compileConnector(c: ConnectorConfig): CompiledConnector {
  const allow = new Map<string, Set<string>>();
  const deny = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, principal: string, rights: readonly string[]): void => {
    let s = m.get(principal);
    if (s === undefined) m.set(principal, (s = new Set()));
    for (const r of rights) s.add(r);
  };
  for (const group of c.permissionGroups) {
    for (const [principal, rights] of Object.entries(PERMISSION_GROUPS[group])) add(allow, principal, rights);
  }
  for (const ace of c.extendedRights) {
    add(allow, ace.principal, ace.allow);
    add(deny, ace.principal, ace.deny);
  }
  const acl: CompiledConnector['acl'] = {};
  for (const principal of new Set([...allow.keys(), ...deny.keys()])) {
    acl[principal] = {
      allow: [...(allow.get(principal) ?? [])].sort(),
      deny: [...(deny.get(principal) ?? [])].sort(),
    };
  }
  const mech = new Set(c.authMechanisms);
  return {
    name: c.name,
    usage: c.usage,
    dialect: c.dialect,
    fqdn: c.fqdn,
    banner: c.banner,
    auth: {
      none: mech.has('None'),
      tls: mech.has('Tls'),
      basic: mech.has('BasicAuth'),
      basic_require_tls: mech.has('BasicAuthRequireTLS'),
      external_authoritative: mech.has('ExternalAuthoritative'),
    },
    sasl: c.basicAuthMechanisms,
    require_tls: c.requireTls,
    domain_secure: c.domainSecureEnabled,
    max_message_size: c.maxMessageSize,
    max_header_size: c.maxHeaderSize,
    max_recipients_per_message: c.maxRecipientsPerMessage,
    max_inbound_connection: c.maxInboundConnection,
    max_inbound_connection_per_source: c.maxInboundConnectionPerSource,
    message_rate_limit: c.messageRateLimit,
    message_rate_source: c.messageRateSource,
    max_logon_failures: c.maxLogonFailures,
    max_hop_count: c.maxHopCount,
    require_ehlo_domain: c.requireEhloDomain,
    acl,
    // A connector banner is its greeting, unless the admin overrode ok_connect explicitly.
    replies: Object.fromEntries(
      Object.entries(c.banner === null ? c.replies : { ok_connect: { code: 220, enhanced: '', text: c.banner }, ...c.replies }).map(([k, r]) => [k, compileReply(r)]),
    ),
  };
}

/**
 * A reply as the policy uses it: the reply itself and the decision kind a failure with it
 * takes (disconnect when the entry says so, else reject for 5xx and tempfail for 4xx),
 * worked out here once instead of at every decision.
 */
export interface CompiledReply {
  readonly kind: 'continue' | 'reject' | 'tempfail' | 'disconnect';
  readonly reply: { readonly code: number; readonly enhanced: string; readonly text: string };
}

export function compileReply(r: Reply): CompiledReply {
  const kind = r.disconnect === true ? 'disconnect' : r.code >= 500 ? 'reject' : r.code >= 400 ? 'tempfail' : 'continue';
  return { kind, reply: { code: r.code, enhanced: r.enhanced, text: r.text } };
}

function compileReplies(overrides: Readonly<Record<string, Reply>>): PolicyData['replies'] {
  const out: PolicyData['replies'] = { exchange: {}, rfc: {} };
  for (const [reason, entry] of Object.entries(REPLY_CATALOGUE)) {
    out.exchange[reason] = compileReply(overrides[reason] ?? entry.exchange);
    out.rfc[reason] = compileReply(overrides[reason] ?? entry.rfc);
  }
  return out;
}

// --- connector selection index ---------------------------------------------------------------


/** Split an inclusive range into the minimal list of CIDR blocks. */
export function rangeToBlocks(first: bigint, last: bigint, width: number): { network: bigint; length: number }[] {
  const blocks: { network: bigint; length: number }[] = [];
  let start = first;
  while (start <= last) {
    // Largest power-of-two block aligned at `start` that does not run past `last`.
    let size = 1n;
    let length = width;
    while (length > 0) {
      const bigger = size << 1n;
      if (start % bigger !== 0n || start + bigger - 1n > last) break;
      size = bigger;
      length--;
    }
    blocks.push({ network: start, length });
    start += size;
  }
  return blocks;
}

export function addressBits(value: bigint, family: 4 | 6): string {
  return value.toString(2).padStart(ADDRESS_BITS[family], '0');
}

function compileSelection(connectors: readonly ConnectorConfig[]): PolicyData['selection'] {
  interface Pending {
    family: 4 | 6;
    key: string;
    wildcard: boolean;
    size: bigint;
    uid: number;
    connector: string;
    range: string;
    binding: string;
    first: bigint;
    last: bigint;
  }
  const pending: Pending[] = [];
  for (const c of connectors) {
    for (const b of c.bindings) {
      for (const r of c.remoteIpRanges) {
        if (r.family !== b.family) continue; // a TCP connection's ends share one family
        pending.push({
          family: b.family,
          key: `${b.port}|${b.ip ?? '*'}`,
          wildcard: b.ip === null,
          size: r.last - r.first + 1n,
          uid: pending.length,
          connector: c.name,
          range: r.text,
          binding: b.text,
          first: r.first,
          last: r.last,
        });
      }
    }
  }
  // Rank range sizes: equal sizes share a rank, so equal ranges compare on the binding alone.
  const sizes = [...new Set(pending.map((p) => p.size))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const rank = new Map(sizes.map((s, i) => [s, i]));
  const span = pending.length + 1;
  const out: PolicyData['selection'] = { '4': {}, '6': {} };
  for (const p of pending) {
    const score = ((rank.get(p.size) ?? 0) * 2 + (p.wildcard ? 1 : 0)) * span + p.uid;
    const group = (out[p.family === 4 ? '4' : '6'][p.key] ??= { lengths: [], prefixes: {} });
    for (const block of rangeToBlocks(p.first, p.last, ADDRESS_BITS[p.family])) {
      const prefix = addressBits(block.network, p.family).slice(0, block.length);
      const existing = group.prefixes[prefix];
      // The same block can come from two nested ranges: keep the more specific one.
      if (existing === undefined || score < existing.score) {
        group.prefixes[prefix] = { connector: p.connector, range: p.range, binding: p.binding, score };
      }
      if (!group.lengths.includes(block.length)) group.lengths.push(block.length);
    }
  }
  for (const family of ['4', '6'] as const) {
    for (const g of Object.values(out[family])) g.lengths.sort((a, b) => b - a);
  }
  return out;
}
