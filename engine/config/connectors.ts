/** Receive connectors: their keys, their defaults by usage, and the rules across their keys. */
import { asciiLower } from '../util.js';
import { code, type Issues, type Loc } from './issues.js';
import { At, BAD, list, located, named, nullable, obj, optional, refine, required, withDefault, type Decoder, type Field, type Json, type ObjOf } from './decode.js';
import { boolean, integer, limit, oneOf, string } from './scalars.js';
import { fromJson } from './yaml.js';
import { checkOpenRelay, ace, type PrincipalLookups } from './rights.js';
import { KB, GB } from './units.js';
import { USAGE_DEFAULTS, usageDescription, usageFieldMeta, usageRequirements, type UsageKey } from './usage.js';
import { binding, byteSize, host, ipRange, nextHop, replies, sasl } from './values.js';
import { tlsFiles } from './secrets.js';
import { AUTH_MECHANISMS, DIALECTS, MESSAGE_RATE_SOURCES, PERMISSION_GROUP_NAMES, USAGES } from './types.js';
import type { AuthMechanism, Binding, ConnectorConfig, IpRange, PermissionGroup, ServerConfig } from './types.js';

/** What a connector's defaults and principals depend on. */
export interface ConnectorEnv {
  readonly server: Pick<ServerConfig, 'fqdn' | 'dialect' | 'tls' | 'nextHop'>;
  readonly principals: PrincipalLookups;
  /** Relative paths are relative to this file's directory. */
  readonly configFile: string;
  /** `listen` when a connector does not say: true unless a milter or policy server is configured. */
  readonly listenDefault: boolean;
}

const NOT_SUPPORTED = 'servers authenticate with AUTH as identities in group "Exchange Servers"; for trusted servers by IP address use ExternalAuthoritative with permission group ExchangeServers';
const REFUSED_MECHANISMS: Readonly<Record<string, readonly [string, string]>> = {
  Integrated: ['auth mechanism `Integrated` is not supported by mta-policy (NTLM/Kerberos needs Active Directory)', NOT_SUPPORTED],
  ExchangeServer: ['auth mechanism `ExchangeServer` is not supported by mta-policy (Exchange server-to-server authentication needs Active Directory)', NOT_SUPPORTED],
};

type L<T> = { value: T; loc: Loc }[];

/** `[None]` alone means "none"; None beside others is a mistake. */
function noneAlone<T extends string>(what: string): (items: L<T | 'None'>, at: At) => L<T | 'None'> | typeof BAD {
  return (items, at) => {
    const none = items.find((i) => i.value === 'None');
    if (none !== undefined && items.length > 1) {
      at.issues.add(none.loc, `\`None\` must be the only ${what}`, `remove \`None\`, or remove the other ${what === 'auth mechanism' ? 'mechanisms' : 'groups'}`);
      return BAD;
    }
    return items;
  };
}

const groups = refine(
  list(located(oneOf(['None', ...PERMISSION_GROUP_NAMES])), { unique: { key: (g) => g.value, label: (g) => `permission group ${code(g.value)}` } }),
  noneAlone<PermissionGroup>('permission group'),
);

const mechanisms = refine(
  list(located(oneOf(AUTH_MECHANISMS, REFUSED_MECHANISMS)), { unique: { key: (m) => m.value, label: (m) => `auth mechanism ${code(m.value)}` } }),
  (items, at) => {
    if (noneAlone<AuthMechanism>('auth mechanism')(items, at) === BAD) return BAD;
    const brt = items.find((m) => m.value === 'BasicAuthRequireTLS');
    const missing = (['BasicAuth', 'Tls'] as const).filter((m) => !items.some((i) => i.value === m));
    if (brt !== undefined && missing.length > 0) {
      at.issues.add(brt.loc, `\`BasicAuthRequireTLS\` requires ${missing.map((m) => code(m)).join(' and ')}`, `add ${missing.join(' and ')} to auth_mechanisms`);
      return BAD;
    }
    // An empty list offers nothing: the same as [None].
    return items.length === 0 ? [{ value: 'None' as const, loc: at }] : items;
  },
);

const banner = refine(nullable(string({ minLength: 1, maxLength: 400, singleLine: true })), (b, at) =>
  b !== null && /^\s*[2-5][0-9][0-9](?:[ -]|$)/.test(b) ? at.fail('the banner must not start with a reply code', 'write only the text; mta-policy sends `220 ` before it') : b,
);

const MAX_INT = 2147483647;

/** The connector keys whose defaults come from the usage table, with their decoders. */
const USAGE_FIELDS = {
  bindings: list(binding(), {
    minItems: 1,
    empty: ['an empty list accepts no connection', 'add `bindings: ["0.0.0.0:25"]`'],
    unique: { key: (b) => b.text, label: (_b, text) => `binding ${code(text)}` },
  }),
  remote_ip_ranges: list(ipRange(), {
    minItems: 1,
    empty: ['an empty list matches no client', 'add `remote_ip_ranges: ["192.0.2.0/24"]`'],
    unique: { key: (r) => `${r.family}:${r.first.toString(16)}:${r.last.toString(16)}`, label: (_r, text) => `remote range ${code(text)}` },
  }),
  permission_groups: groups,
  auth_mechanisms: mechanisms,
  max_message_size: byteSize(64 * KB, 2 * GB),
  max_header_size: byteSize(KB, 2 * GB),
  max_recipients_per_message: limit(1, 512000),
  max_inbound_connection: limit(1, MAX_INT),
  max_inbound_connection_per_source: limit(1, MAX_INT),
  message_rate_limit: limit(1, MAX_INT),
  message_rate_source: oneOf(MESSAGE_RATE_SOURCES),
  max_logon_failures: integer(0, 100),
  max_hop_count: integer(1, 500),
} satisfies Record<UsageKey, Decoder<unknown>>;

type UsageValues = { [K in UsageKey]: (typeof USAGE_FIELDS)[K] extends Decoder<infer T> ? T : never };
const decoderOf = <K extends UsageKey>(key: K): Decoder<UsageValues[K]> => USAGE_FIELDS[key] as unknown as Decoder<UsageValues[K]>;

/** A key the usage table sets: optional in the file, published with its defaults by usage. */
const u = <K extends UsageKey>(key: K, description: string, examples?: readonly Json[]): Field<UsageValues[K], 'optional'> =>
  optional(decoderOf(key), usageFieldMeta(key, description, examples));

function fields(env: ConnectorEnv) {
  return {
    name: required(string({ minLength: 1, emptyFix: 'add `name: ...`' }), 'add `name: ...`', { description: 'Unique connector name (case-insensitive).', examples: ['Client Frontend SMTP01'] }),
    enabled: withDefault(boolean(), true, { description: 'Disabled connectors are validated but accept no connections.' }),
    usage: required(oneOf(USAGES), 'add `usage: client`, `internet`, `internal`, `partner` or `custom`', { description: usageDescription() }),
    bindings: u('bindings', 'Local ip:port pairs the connector listens on; 0.0.0.0 is every local IPv4 address and [::] every local IPv6 address.', [['0.0.0.0:25', '[::]:25']]),
    remote_ip_ranges: u(
      'remote_ip_ranges',
      'Client addresses this connector serves: single IPs, CIDR blocks or a-b ranges. On a shared binding the most specific range wins; equal or partially overlapping ranges are an error.',
      [['198.18.5.10', '198.18.7.1-198.18.7.30', '2001:db8:77::/48']],
    ),
    permission_groups: u('permission_groups', 'Permission groups (Exchange -PermissionGroups); each grants a fixed set of extended rights. [] or [None] grants nothing.'),
    auth_mechanisms: u(
      'auth_mechanisms',
      'Authentication offered (Exchange -AuthMechanism). None must be alone; BasicAuthRequireTLS needs BasicAuth and Tls; ExternalAuthoritative needs ExchangeServers in permission_groups. Integrated and ExchangeServer are not supported.',
    ),
    require_tls: withDefault(boolean(), false, { description: 'Refuse MAIL FROM before STARTTLS (then disconnect). Needs Tls.' }),
    fqdn: optional(host(), { description: 'Host name in the banner and the EHLO reply. Default: server.fqdn.', examples: ['relay.northwind.test'] }),
    banner: withDefault(banner, null, { description: "Greeting text after `220 ` (without the code). null: the dialect's default greeting." }),
    dialect: optional(oneOf(DIALECTS), { description: 'Reply wording for this connector (exchange | rfc). Default: server.dialect.' }),
    max_message_size: u('max_message_size', 'Largest message accepted, 64KB to 2GB or unlimited. KB/MB/GB are binary (36MB = 37748736 bytes).'),
    max_header_size: u('max_header_size', 'Largest header section accepted, 1KB to 2GB or unlimited.'),
    max_recipients_per_message: u('max_recipients_per_message', 'Recipients accepted per message (1 to 512000) or unlimited; more get 452 4.5.3.'),
    max_inbound_connection: u('max_inbound_connection', 'Concurrent connections to this connector, or unlimited.'),
    max_inbound_connection_per_source: u('max_inbound_connection_per_source', 'Concurrent connections from one client IP, or unlimited.'),
    message_rate_limit: u('message_rate_limit', 'Messages per minute per message_rate_source, or unlimited.'),
    message_rate_source: u('message_rate_source', 'What message_rate_limit counts per: user | ip_address | all.'),
    max_logon_failures: u('max_logon_failures', 'Failed AUTH attempts before the session is closed; 0 never closes it.'),
    max_hop_count: u('max_hop_count', 'Most Received: headers a message may carry before it is refused as a loop (554 5.4.6).'),
    require_ehlo_domain: withDefault(boolean(), false, { description: 'Require a domain argument to EHLO/HELO (501 5.0.0 otherwise).' }),
    domain_secure_enabled: optional(boolean(), {
      description: 'Domain Secure: mail from server.domain_secure_domains must come over mutual TLS. Needs Tls. Default: true when Partners is in permission_groups.',
    }),
    basic_auth_mechanisms: withDefault(
      list(sasl(), { minItems: 1, empty: ['', 'list PLAIN and/or LOGIN, or remove the key'], unique: { key: (m) => m, label: (m) => code(m) } }),
      ['PLAIN', 'LOGIN'],
      { description: 'SASL mechanisms offered for BasicAuth (case-insensitive).' },
    ),
    extended_rights: withDefault(list(ace(env.principals)), [], {
      description:
        'Explicit permission entries on this connector (Exchange: Add-ADPermission -ExtendedRights / Remove-ADPermission). A deny wins over any allow, including those from permission groups.',
    }),
    replies: withDefault(replies(), {}, { description: 'Reply overrides by reason for this connector.' }),
    tls: optional(tlsFiles(env.configFile), { description: 'Certificate and key for this connector; default: server.tls.' }),
    implicit_tls: optional(boolean(), { description: 'TLS from the first byte (RFC 8314) instead of STARTTLS. Default: true when the bindings are on port 465.' }),
    listen: optional(boolean(), {
      description: "Served by mta-policy's own SMTP listener on the bindings. Default: true when the configuration has neither milter: nor postfix_policy:, else false (the bindings then describe the MTA's listeners).",
    }),
    next_hop: optional(nextHop(env.configFile), { description: 'Where accepted mail goes; default: server.next_hop.' }),
  };
}

type RawConnector = ObjOf<ReturnType<typeof fields>>;

/** The value of a usage-table key: as written, or the usage's default decoded at the `usage` key. */
function valueOf<K extends UsageKey>(raw: RawConnector, key: K, at: At): UsageValues[K] {
  const written = raw[key] as UsageValues[K] | undefined;
  if (written !== undefined) return written;
  const usageAt = raw.where.value('usage');
  const frozen = At.of(at.issues, usageAt.path, usageAt.offset, true);
  const v = decoderOf(key).decode(fromJson(USAGE_DEFAULTS[raw.usage][key] as Json), frozen);
  if (v === BAD) throw new Error(`the ${raw.usage} default for ${key} is invalid`);
  return v;
}

/**
 * A TCP connection's ends share one address family (IPv4-mapped clients count as IPv4), so a
 * remote range of a family no binding listens on can never match: the connector would silently
 * do nothing.
 */
function checkReachable(issues: Issues, raw: RawConnector, bindings: readonly Binding[], ranges: readonly IpRange[]): boolean {
  if (raw.remote_ip_ranges === undefined) return true;
  for (const family of [4, 6] as const) {
    const range = ranges.find((r) => r.family === family);
    if (range === undefined || bindings.some((b) => b.family === family)) continue;
    issues.add(
      raw.where.value('remote_ip_ranges'),
      `remote range ${code(range.text)} is IPv${family} but the connector has no IPv${family} binding, so it can never match`,
      family === 4 ? 'add an IPv4 binding such as "0.0.0.0:25" (IPv4 clients of a dual-stack [::] socket arrive as IPv4)' : 'add an IPv6 binding such as "[::]:25"',
    );
    return false;
  }
  return true;
}

/** Rules across a connector's keys, then the connector with every default applied. */
function build(raw: RawConnector, at: At, env: ConnectorEnv): ConnectorConfig | typeof BAD {
  const issues = at.issues;
  for (const key of ['bindings', 'remote_ip_ranges'] as const) {
    if (raw[key] === undefined && USAGE_DEFAULTS[raw.usage][key] === null) {
      const fix = key === 'bindings' ? 'add `bindings: ["0.0.0.0:25"]`' : 'add `remote_ip_ranges: ["192.0.2.0/24"]`';
      return at.fail(`a connector with usage ${code(raw.usage)} needs ${code(key)}: this usage has no default`, fix);
    }
  }
  const bindings = valueOf(raw, 'bindings', at);
  const remoteIpRanges = valueOf(raw, 'remote_ip_ranges', at);
  const permissionGroups = valueOf(raw, 'permission_groups', at).map((g) => g.value).filter((g): g is PermissionGroup => g !== 'None');
  const authLocated = valueOf(raw, 'auth_mechanisms', at);
  const authMechanisms = authLocated.map((m) => m.value);
  const authAt = (m: AuthMechanism): Loc => authLocated.find((x) => x.value === m)?.loc ?? raw.where.value('auth_mechanisms');
  const hasTls = authMechanisms.includes('Tls');
  let ok = true;
  const fail = (loc: Loc, message: string, fix: string): void => {
    issues.add(loc, message, fix);
    ok = false;
  };
  if (authMechanisms.includes('ExternalAuthoritative') && !permissionGroups.includes('ExchangeServers')) {
    fail(authAt('ExternalAuthoritative'), '`ExternalAuthoritative` requires permission group `ExchangeServers`', 'add ExchangeServers to permission_groups (the connection is then treated as an externally secured Exchange server)');
  }
  if (raw.require_tls && !hasTls) {
    fail(raw.where.value('require_tls'), '`require_tls: true` requires auth mechanism `Tls` (STARTTLS must be offered)', 'add Tls to auth_mechanisms or set require_tls: false');
  }
  const domainSecureEnabled = raw.domain_secure_enabled ?? permissionGroups.includes('Partners');
  if (domainSecureEnabled && !hasTls) {
    if (raw.domain_secure_enabled !== undefined) {
      fail(raw.where.value('domain_secure_enabled'), '`domain_secure_enabled: true` requires auth mechanism `Tls`', 'add Tls to auth_mechanisms or set domain_secure_enabled: false');
    } else {
      fail(
        raw.where.value(raw.auth_mechanisms !== undefined ? 'auth_mechanisms' : 'permission_groups'),
        'permission group `Partners` turns on Domain Secure, which requires auth mechanism `Tls`',
        'add Tls to auth_mechanisms, or set domain_secure_enabled: false',
      );
    }
  }
  // RFC 8314 §3.3: port 465 is implicit TLS; a connector mixing it with STARTTLS ports must say which it means.
  const on465 = bindings.filter((b) => b.port === 465).length;
  if (raw.implicit_tls === undefined && on465 > 0 && on465 < bindings.length) {
    fail(raw.where.value('bindings'), 'the bindings mix port 465 (implicit TLS) with other ports', 'set implicit_tls: true or false, or split the connector');
  }
  const relay = { ranges: remoteIpRanges, mechanisms: authMechanisms, groups: permissionGroups, aces: raw.extended_rights, domainSecure: domainSecureEnabled };
  if (!checkReachable(issues, raw, bindings, remoteIpRanges) || !checkOpenRelay(issues, raw.where.value('remote_ip_ranges'), relay) || !ok) return BAD;

  return {
    name: raw.name.trim(),
    enabled: raw.enabled,
    usage: raw.usage,
    bindings,
    remoteIpRanges,
    permissionGroups,
    authMechanisms,
    requireTls: raw.require_tls,
    fqdn: raw.fqdn ?? env.server.fqdn,
    banner: raw.banner,
    dialect: raw.dialect ?? env.server.dialect,
    maxMessageSize: valueOf(raw, 'max_message_size', at),
    maxHeaderSize: valueOf(raw, 'max_header_size', at),
    maxRecipientsPerMessage: valueOf(raw, 'max_recipients_per_message', at),
    maxInboundConnection: valueOf(raw, 'max_inbound_connection', at),
    maxInboundConnectionPerSource: valueOf(raw, 'max_inbound_connection_per_source', at),
    messageRateLimit: valueOf(raw, 'message_rate_limit', at),
    messageRateSource: valueOf(raw, 'message_rate_source', at),
    maxLogonFailures: valueOf(raw, 'max_logon_failures', at),
    maxHopCount: valueOf(raw, 'max_hop_count', at),
    requireEhloDomain: raw.require_ehlo_domain,
    domainSecureEnabled,
    basicAuthMechanisms: raw.basic_auth_mechanisms,
    extendedRights: raw.extended_rights,
    replies: raw.replies,
    tls: raw.tls ?? env.server.tls ?? null,
    implicitTls: raw.implicit_tls ?? on465 === bindings.length,
    listen: raw.listen ?? env.listenDefault,
    nextHop: raw.next_hop ?? env.server.nextHop ?? null,
    source: issues.ref(at),
  };
}

/** The `connectors` list: each connector decoded and built; names unique (case-insensitively). */
export function connectors(env: ConnectorEnv): Decoder<ConnectorConfig[]> {
  const one = named(
    'connector',
    refine(obj(fields(env), { description: 'A receive connector (Exchange: New-ReceiveConnector).', noun: 'this connector', schema: usageRequirements() }), (raw, at) => {
      const built = build(raw, at, env);
      return built === BAD ? BAD : { built, nameAt: raw.where.value('name') };
    }),
  );
  return refine(list(one), (items, at) => {
    const names = new Map<string, { line: number; name: string }>();
    let ok = true;
    for (const { built, nameAt } of items) {
      const key = asciiLower(built.name);
      const prev = names.get(key);
      if (prev === undefined) names.set(key, { line: at.issues.line(nameAt) ?? 0, name: built.name });
      else {
        at.issues.add(nameAt, `connector name ${code(built.name)} is already used by ${code(prev.name)} at line ${prev.line} (names are case-insensitive)`, 'rename one of them');
        ok = false;
      }
    }
    return ok ? items.map((i) => i.built) : BAD;
  });
}
