/** Building the connectors, with each usage's defaults, and their extended-rights principals. */
import { RIGHTS, WELL_KNOWN_PRINCIPALS } from './types.js';
import type {
  Ace,
  AuthMechanism,
  Binding,
  ConnectorConfig,
  IpRange,
  PermissionGroup,
  Right,
  ServerConfig,
  Usage,
  UserIdentity,
} from './types.js';
import { allAddresses, formatRange, isParseFailure, parseBinding, parseIpRange } from '../ip.js';
import { GB, KB, formatByteSize, parseByteSize } from './units.js';
import type { Context } from './context.js';
import { REQUIRED_HINTS, code, didYouMean } from './messages.js';
import type { Path } from './messages.js';
import { normaliseHost } from './names.js';
import type { RawConnector, RawLimit } from './raw.js';
import { buildReplies, withoutFields } from './sections.js';

const REMOTE_ALL = 'all';
interface UsageDefaults {
  readonly bindings: readonly string[] | null;
  readonly remote: typeof REMOTE_ALL | null;
  readonly groups: readonly PermissionGroup[];
  readonly auth: readonly AuthMechanism[];
}

export const USAGE_DEFAULTS: Readonly<Record<Usage, UsageDefaults>> = {
  client: {
    bindings: ['0.0.0.0:587', '[::]:587'],
    remote: REMOTE_ALL,
    groups: ['ExchangeUsers'],
    auth: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
  },
  internet: { bindings: null, remote: REMOTE_ALL, groups: ['AnonymousUsers'], auth: ['Tls'] },
  internal: {
    bindings: ['0.0.0.0:25', '[::]:25'],
    remote: null,
    groups: ['ExchangeServers', 'ExchangeLegacyServers'],
    auth: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
  },
  partner: { bindings: null, remote: null, groups: ['Partners'], auth: ['Tls'] },
  custom: { bindings: null, remote: null, groups: [], auth: ['Tls'] },
};
const RIGHT_BY_LOWER = new Map<string, Right>(RIGHTS.map((r) => [r.toLowerCase(), r]));
const EXCHANGE_PRINCIPAL_NAMES: Readonly<Record<string, string>> = {
  'nt authority\\anonymous logon': 'anonymous',
  'anonymous logon': 'anonymous',
  'nt authority\\authenticated users': 'authenticated',
  'authenticated users': 'authenticated',
  'ms exchange\\externally secured servers': 'externally_secured',
  'externally secured servers': 'externally_secured',
  'ms exchange\\partner servers': 'partner',
  'partner servers': 'partner',
  'exchange servers': 'exchange_servers',
  'exchangelegacyinterop': 'exchange_legacy_servers',
};

// --- connectors -----------------------------------------------------------------------------------------

export interface BuiltConnector {
  readonly index: number;
  readonly config: ConnectorConfig;
}

function parseLimit(v: RawLimit | undefined, dflt: number | null): number | null {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return v;
  return null; // the schema admits only `unlimited` as a string
}

export function buildConnectors(
  ctx: Context,
  value: unknown,
  server: ServerConfig,
  users: readonly UserIdentity[],
  identitiesClean: boolean,
): BuiltConnector[] {
  const out: BuiltConnector[] = [];
  if (!Array.isArray(value)) return out;
  const names = new Map<string, { line: number; name: string }>();
  const userNames = new Map(users.map((u) => [u.name.toLowerCase(), u.name]));
  const groupNames = new Map<string, string>();
  for (const u of users) for (const g of u.groups) if (!groupNames.has(g.toLowerCase())) groupNames.set(g.toLowerCase(), g);
  const lookups: PrincipalLookups = { userNames, groupNames, reliable: identitiesClean };

  value.forEach((item: unknown, i) => {
    const p: Path = ['connectors', i];
    const taint = ctx.taintOf(p);
    if (taint.self || taint.fields.has('name') || taint.fields.has('usage')) return;
    const raw = withoutFields(item as RawConnector, taint.fields);
    const name = raw.name.trim();
    if (name === '') {
      ctx.add([...p, 'name'], 'a connector name must not be blank', REQUIRED_HINTS['name']);
      return;
    }
    const prev = names.get(name.toLowerCase());
    if (prev !== undefined) {
      ctx.add([...p, 'name'], `connector name ${code(name)} is already used by ${code(prev.name)} at line ${prev.line} (names are case-insensitive)`, 'rename one of them');
    } else {
      names.set(name.toLowerCase(), { line: ctx.line([...p, 'name']) ?? 0, name });
    }
    const built = buildConnector(ctx, p, raw, name, server, lookups);
    // A connector with schema errors is checked as far as possible but takes no part in the
    // conflict check: its defaults would stand in for the values that were wrong.
    if (built !== null && !taint.any) out.push({ index: i, config: built });
  });
  return out;
}

interface PrincipalLookups {
  readonly userNames: ReadonlyMap<string, string>;
  readonly groupNames: ReadonlyMap<string, string>;
  /** False when identities had errors: then unknown user/group names are not reported. */
  readonly reliable: boolean;
}

function buildConnector(ctx: Context, p: Path, raw: RawConnector, name: string, server: ServerConfig, lookups: PrincipalLookups): ConnectorConfig | null {
  const before = ctx.issues.length;
  const usage = raw.usage;
  const defaults = USAGE_DEFAULTS[usage];
  const usageRef = ctx.ref([...p, 'usage']);

  // Cross-field rules are checked only when every field they involve passed the schema.
  const clean = (...keys: string[]): boolean => keys.every((k) => ctx.isClean([...p, k]));

  // Bindings.
  const bindings: Binding[] = [];
  const bindingLines = new Map<string, { line: number; text: string }>();
  if (raw.bindings !== undefined) {
    for (const [text, bp] of ctx.items([...p, 'bindings'], raw.bindings)) {
      const b = parseBinding(text);
      if (isParseFailure(b)) {
        ctx.add(bp, b.error, b.fix);
        continue;
      }
      const dup = bindingLines.get(b.text);
      if (dup !== undefined) {
        const same = dup.text.trim() === text.trim() ? `binding ${code(b.text)} is listed twice` : `binding ${code(text.trim())} is the same as ${code(dup.text.trim())}`;
        ctx.add(bp, `${same} (line ${dup.line})`, 'remove one of them');
        continue;
      }
      bindingLines.set(b.text, { line: ctx.line(bp) ?? 0, text });
      bindings.push({ text: b.text, ip: b.ip, family: b.family, port: b.port, source: ctx.ref(bp) });
    }
  } else {
    for (const text of defaults.bindings ?? []) {
      const b = parseBinding(text);
      if (!isParseFailure(b)) bindings.push({ text: b.text, ip: b.ip, family: b.family, port: b.port, source: usageRef });
    }
  }

  // Remote IP ranges.
  const remoteIpRanges: IpRange[] = [];
  const rangeLines = new Map<string, { line: number; text: string }>();
  if (raw.remote_ip_ranges !== undefined) {
    for (const [text, rp] of ctx.items([...p, 'remote_ip_ranges'], raw.remote_ip_ranges)) {
      const r = parseIpRange(text);
      if (isParseFailure(r)) {
        ctx.add(rp, r.error, r.fix);
        continue;
      }
      const key = `${r.family}:${r.first}:${r.last}`;
      const dup = rangeLines.get(key);
      if (dup !== undefined) {
        const same = dup.text.trim() === text.trim() ? `remote range ${code(text.trim())} is listed twice` : `remote range ${code(text.trim())} is the same as ${code(dup.text.trim())}`;
        ctx.add(rp, `${same} (line ${dup.line})`, 'remove one of them');
        continue;
      }
      rangeLines.set(key, { line: ctx.line(rp) ?? 0, text });
      remoteIpRanges.push({ text: text.trim(), family: r.family, first: r.first, last: r.last, source: ctx.ref(rp) });
    }
  } else if (defaults.remote === REMOTE_ALL) {
    for (const fam of [4, 6] as const) {
      const r = allAddresses(fam);
      remoteIpRanges.push({ text: formatRange(r), family: fam, first: r.first, last: r.last, source: usageRef });
    }
  }

  // Permission groups.
  const groupsPath = [...p, 'permission_groups'];
  const rawGroups = raw.permission_groups;
  const permissionGroups: PermissionGroup[] = [];
  if (rawGroups === undefined) permissionGroups.push(...defaults.groups);
  else {
    for (const [g, gp] of ctx.items(groupsPath, rawGroups)) {
      if (g === 'None') {
        if (rawGroups.length > 1) ctx.add(gp, '`None` must be the only permission group', 'remove `None`, or remove the other groups');
      } else if (permissionGroups.includes(g)) {
        ctx.add(gp, `permission group ${code(g)} is listed twice`, 'remove one');
      } else {
        permissionGroups.push(g);
      }
    }
  }

  // Auth mechanisms.
  const authPath = [...p, 'auth_mechanisms'];
  const authMechanisms: AuthMechanism[] = [];
  const rawAuth = raw.auth_mechanisms;
  const authItemPath = new Map<AuthMechanism, Path>();
  if (rawAuth === undefined) authMechanisms.push(...defaults.auth);
  else {
    for (const [m, ap] of ctx.items(authPath, rawAuth)) {
      if (authMechanisms.includes(m)) {
        ctx.add(ap, `auth mechanism ${code(m)} is listed twice`, 'remove one');
        continue;
      }
      authMechanisms.push(m);
      authItemPath.set(m, ap);
    }
    if (rawAuth.length === 0) authMechanisms.push('None');
  }
  const authAt = (m: AuthMechanism): Path => authItemPath.get(m) ?? authPath;
  if (clean('auth_mechanisms')) {
    if (authMechanisms.includes('None') && authMechanisms.length > 1) {
      ctx.add(authAt('None'), '`None` must be the only auth mechanism', 'remove `None`, or remove the other mechanisms');
    }
    if (authMechanisms.includes('BasicAuthRequireTLS')) {
      const missing = (['BasicAuth', 'Tls'] as const).filter((m) => !authMechanisms.includes(m));
      if (missing.length > 0) {
        ctx.add(authAt('BasicAuthRequireTLS'), `\`BasicAuthRequireTLS\` requires ${missing.map(code).join(' and ')}`, `add ${missing.join(' and ')} to auth_mechanisms`);
      }
    }
  }
  if (clean('auth_mechanisms', 'permission_groups') && authMechanisms.includes('ExternalAuthoritative') && !permissionGroups.includes('ExchangeServers')) {
    ctx.add(
      authAt('ExternalAuthoritative'),
      '`ExternalAuthoritative` requires permission group `ExchangeServers`',
      'add ExchangeServers to permission_groups (the connection is then treated as an externally secured Exchange server)',
    );
  }
  const hasTls = authMechanisms.includes('Tls');
  const requireTls = raw.require_tls ?? false;
  if (clean('auth_mechanisms', 'require_tls') && requireTls && !hasTls) {
    ctx.add([...p, 'require_tls'], '`require_tls: true` requires auth mechanism `Tls` (STARTTLS must be offered)', 'add Tls to auth_mechanisms or set require_tls: false');
  }
  const domainSecureEnabled = raw.domain_secure_enabled ?? permissionGroups.includes('Partners');
  if (clean('auth_mechanisms', 'permission_groups', 'domain_secure_enabled') && domainSecureEnabled && !hasTls) {
    if (raw.domain_secure_enabled !== undefined) {
      ctx.add([...p, 'domain_secure_enabled'], '`domain_secure_enabled: true` requires auth mechanism `Tls`', 'add Tls to auth_mechanisms or set domain_secure_enabled: false');
    } else {
      ctx.add(
        rawAuth !== undefined ? authPath : groupsPath,
        'permission group `Partners` turns on Domain Secure, which requires auth mechanism `Tls`',
        'add Tls to auth_mechanisms, or set domain_secure_enabled: false',
      );
    }
  }

  // FQDN, banner, dialect.
  let fqdn = server.fqdn;
  if (raw.fqdn !== undefined) {
    const h = normaliseHost(raw.fqdn);
    if (isParseFailure(h)) ctx.add([...p, 'fqdn'], h.error, h.fix);
    else fqdn = h;
  }
  const banner = raw.banner ?? null;
  if (banner !== null && /^\s*[2-5][0-9][0-9](?:[ -]|$)/.test(banner)) {
    ctx.add([...p, 'banner'], 'the banner must not start with a reply code', 'write only the text; mta-policy sends `220 ` before it');
  }
  const dialect = raw.dialect ?? server.dialect;

  // Sizes.
  const size = (key: 'max_message_size' | 'max_header_size', dflt: number, min: number, max: number): number | null => {
    const v = raw[key];
    if (v === undefined) return dflt;
    const s = parseByteSize(v);
    if (isParseFailure(s)) {
      ctx.add([...p, key], s.error, s.fix);
      return dflt;
    }
    if (s.bytes !== null && (s.bytes < min || s.bytes > max)) {
      ctx.add(
        [...p, key],
        `${key} must be from ${formatByteSize(min)} to ${formatByteSize(max)}, or unlimited; ${code(String(v))} is ${formatByteSize(s.bytes)}`,
        `use a size from ${formatByteSize(min)} to ${formatByteSize(max)}`,
      );
    }
    return s.bytes;
  };
  const maxMessageSize = size('max_message_size', 36 * 1024 * KB, 64 * KB, 2 * GB);
  const maxHeaderSize = size('max_header_size', 256 * KB, KB, 2 * GB);

  // Basic auth mechanisms.
  const basicAuthMechanisms: string[] = [];
  if (raw.basic_auth_mechanisms === undefined) basicAuthMechanisms.push('PLAIN', 'LOGIN');
  else {
    for (const [m, mp] of ctx.items([...p, 'basic_auth_mechanisms'], raw.basic_auth_mechanisms)) {
      const up = m.toUpperCase();
      if (basicAuthMechanisms.includes(up)) ctx.add(mp, `${code(up)} is listed twice`, 'remove one');
      else basicAuthMechanisms.push(up);
    }
  }

  // Extended rights.
  const extendedRights: Ace[] = [];
  for (const [ace, ep] of ctx.items([...p, 'extended_rights'], raw.extended_rights)) {
    const principal = normalisePrincipal(ctx, [...ep, 'principal'], ace.principal, lookups);
    const rights = (key: 'allow' | 'deny'): Right[] => {
      const out: Right[] = [];
      for (const [text, rp] of ctx.items([...ep, key], ace[key])) {
        const r = RIGHT_BY_LOWER.get(text.trim().toLowerCase());
        if (r === undefined) continue; // reported by the schema
        if (out.includes(r)) ctx.add(rp, `${code(r)} is listed twice`, 'remove one');
        else out.push(r);
      }
      return out;
    };
    const allow = rights('allow');
    const deny = rights('deny');
    if ((ace.allow ?? []).length === 0 && (ace.deny ?? []).length === 0) {
      ctx.add(ep, 'this entry neither allows nor denies anything', 'add `allow: [...]` and/or `deny: [...]` with extended rights');
      continue;
    }
    for (const r of allow) {
      if (deny.includes(r)) {
        const k = (ace.allow ?? []).findIndex((t) => t.trim().toLowerCase() === r.toLowerCase());
        ctx.add([...ep, 'allow', k], `${code(r)} is both allowed and denied in the same entry (deny would win)`, 'remove it from one of the lists');
      }
    }
    if (principal !== null) extendedRights.push({ principal, allow, deny, source: ctx.ref(ep) });
  }

  const replies = buildReplies(ctx, [...p, 'replies'], raw.replies);
  checkReachable(ctx, p, bindings, remoteIpRanges);
  checkOpenRelay(ctx, p, remoteIpRanges, authMechanisms, extendedRights);
  if (ctx.issues.length > before) return null;

  return {
    name,
    enabled: raw.enabled ?? true,
    usage,
    bindings,
    remoteIpRanges,
    permissionGroups,
    authMechanisms,
    requireTls,
    fqdn,
    banner,
    dialect,
    maxMessageSize,
    maxHeaderSize,
    maxRecipientsPerMessage: parseLimit(raw.max_recipients_per_message, 200),
    maxInboundConnection: parseLimit(raw.max_inbound_connection, 5000),
    maxInboundConnectionPerSource: parseLimit(raw.max_inbound_connection_per_source, 20),
    messageRateLimit: parseLimit(raw.message_rate_limit, usage === 'client' ? 5 : null),
    messageRateSource: raw.message_rate_source ?? (usage === 'client' ? 'user' : 'ip_address'),
    maxLogonFailures: raw.max_logon_failures ?? 3,
    maxHopCount: raw.max_hop_count ?? 30,
    requireEhloDomain: raw.require_ehlo_domain ?? false,
    domainSecureEnabled,
    basicAuthMechanisms,
    extendedRights,
    replies,
    source: ctx.ref(p),
  };
}

function normalisePrincipal(ctx: Context, path: Path, text: string, lookups: PrincipalLookups): string | null {
  const t = text.trim();
  const lower = t.toLowerCase();
  if ((WELL_KNOWN_PRINCIPALS as readonly string[]).includes(lower)) return lower;
  const colon = t.indexOf(':');
  const kind = colon < 0 ? '' : lower.slice(0, colon).trim();
  if (kind === 'user' || kind === 'group') {
    const name = t.slice(colon + 1).trim();
    if (name === '') {
      ctx.add(path, `principal ${code(t)} names no ${kind}`, `write ${kind}:NAME`);
      return null;
    }
    const table = kind === 'user' ? lookups.userNames : lookups.groupNames;
    if (table.has(name.toLowerCase()) || !lookups.reliable) return `${kind}:${name.toLowerCase()}`;
    const known = [...table.values()];
    const hint = kind === 'user' ? 'add the user under identities.users' : 'add the group to a user under identities.users';
    ctx.add(
      path,
      kind === 'user' ? `principal ${code(t)}: there is no user named ${code(name)}` : `principal ${code(t)}: no user is in group ${code(name)}`,
      didYouMean(name, known, hint)?.replace(/`([^`]*)`\?$/, `\`${kind}:$1\`?`),
    );
    return null;
  }
  const exchangeName = EXCHANGE_PRINCIPAL_NAMES[lower];
  if (exchangeName !== undefined) {
    ctx.add(path, `unknown principal ${code(t)}`, `write ${code(exchangeName)}, mta-policy's name for it`);
    return null;
  }
  ctx.add(
    path,
    `unknown principal ${code(t)}`,
    didYouMean(t, WELL_KNOWN_PRINCIPALS, `use one of ${WELL_KNOWN_PRINCIPALS.join(', ')}, user:NAME or group:NAME`),
  );
  return null;
}

/**
 * A TCP connection's ends share one address family (IPv4-mapped clients count as IPv4), so a
 * remote range of a family no binding listens on can never match: the connector would silently
 * do nothing.
 */
function checkReachable(ctx: Context, p: Path, bindings: readonly Binding[], ranges: readonly IpRange[]): void {
  if (bindings.length === 0) return;
  for (const family of [4, 6] as const) {
    if (bindings.some((b) => b.family === family)) continue;
    const range = ranges.find((r) => r.family === family);
    if (range === undefined || range.source.path.endsWith('.usage')) continue;
    ctx.add(
      [...p, 'remote_ip_ranges'],
      `remote range ${code(range.text)} is IPv${family} but the connector has no IPv${family} binding, so it can never match`,
      family === 4
        ? 'add an IPv4 binding such as "0.0.0.0:25" (IPv4 clients of a dual-stack [::] socket arrive as IPv4)'
        : 'add an IPv6 binding such as "[::]:25"',
    );
  }
}

/** Principals anyone can hold without credentials. */
const UNAUTHENTICATED = new Set(['anonymous', 'partner', 'externally_secured']);
const ANY_RECIPIENT = 'ms-Exch-SMTP-Accept-Any-Recipient';

/**
 * Relay granted without credentials to the whole Internet is an open relay: refuse it.
 * (Exchange lets you build one; Microsoft's guidance is never to.)
 */
function checkOpenRelay(ctx: Context, p: Path, ranges: readonly IpRange[], mechanisms: readonly AuthMechanism[], aces: readonly Ace[]): void {
  const everyone = ranges.find((r) => r.first === 0n && r.last === allAddresses(r.family).last);
  if (everyone === undefined) return;
  const grant = mechanisms.includes('ExternalAuthoritative')
    ? 'ExternalAuthoritative treats every client as an externally secured server'
    : aces.some((a) => UNAUTHENTICATED.has(a.principal) && a.allow.includes(ANY_RECIPIENT) && !a.deny.includes(ANY_RECIPIENT))
      ? `an ACE grants ${ANY_RECIPIENT} without authentication`
      : null;
  if (grant === null) return;
  ctx.add(
    [...p, 'remote_ip_ranges'],
    `open relay: remote range ${code(everyone.text)} covers every address and ${grant}`,
    'limit remote_ip_ranges to the hosts that may relay (e.g. your LAN or the scanner\'s address)',
  );
}
