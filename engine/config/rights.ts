/**
 * Extended-rights entries (ACEs) and their principals, and the open-relay check, which asks
 * what a client without credentials really gets on a connector.
 */
import { ADDRESS_BITS, allAddresses, isParseFailure, parseIpRange, uncoveredCount, type IpFamily, type ParsedRange } from '../ip.js';
import { PERMISSION_GROUPS } from '../permissions.js';
import { asciiLower } from '../util.js';
import { code, didYouMean, type Issues, type Loc } from './issues.js';
import { BAD, list, located, named, obj, optional, refine, required, type Decoder } from './decode.js';
import { string } from './scalars.js';
import { right } from './values.js';
import { RIGHT, WELL_KNOWN_PRINCIPALS, type Ace, type AuthMechanism, type ConnectorConfig, type IpRange, type PermissionGroup, type Right } from './types.js';

/** Who can be named in a principal: the configured users and groups (lower-cased keys). */
export interface PrincipalLookups {
  readonly userNames: ReadonlyMap<string, string>;
  readonly groupNames: ReadonlyMap<string, string>;
  /** False when the identities had errors: unknown user and group names are then not reported. */
  readonly reliable: boolean;
}

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
  exchangelegacyinterop: 'exchange_legacy_servers',
};

const PRINCIPAL_DESCRIPTION =
  'Who the entry applies to: anonymous | authenticated | externally_secured | partner | exchange_servers | exchange_legacy_servers | user:NAME (a configured user) | group:NAME (a group some user is in). Names are case-insensitive.';

/** A principal, normalised: a well-known name, `user:<name>` or `group:<name>` (ASCII-folded). */
function principal(lookups: PrincipalLookups): Decoder<string> {
  return refine(string({ minLength: 1, emptyFix: 'add `principal: anonymous` (or authenticated, user:NAME, group:NAME, ...)' }), (text, at) => {
    const t = text.trim();
    const lower = asciiLower(t);
    if ((WELL_KNOWN_PRINCIPALS as readonly string[]).includes(lower)) return lower;
    const colon = t.indexOf(':');
    const kind = colon < 0 ? '' : lower.slice(0, colon).trim();
    if (kind === 'user' || kind === 'group') {
      const name = t.slice(colon + 1).trim();
      if (name === '') return at.fail(`principal ${code(t)} names no ${kind}`, `write ${kind}:NAME`);
      const table = kind === 'user' ? lookups.userNames : lookups.groupNames;
      if (table.has(asciiLower(name)) || !lookups.reliable) return `${kind}:${asciiLower(name)}`;
      const near = didYouMean(name, [...table.values()]);
      return at.fail(
        kind === 'user' ? `principal ${code(t)}: there is no user named ${code(name)}` : `principal ${code(t)}: no user is in group ${code(name)}`,
        near?.replace(/`([^`]*)`\?$/, `\`${kind}:$1\`?`) ?? (kind === 'user' ? 'add the user under identities.users' : 'add the group to a user under identities.users'),
      );
    }
    const exchangeName = EXCHANGE_PRINCIPAL_NAMES[lower];
    if (exchangeName !== undefined) return at.fail(`unknown principal ${code(t)}`, `write ${code(exchangeName)}, mta-policy's name for it`);
    return at.fail(`unknown principal ${code(t)}`, didYouMean(t, WELL_KNOWN_PRINCIPALS, `use one of ${WELL_KNOWN_PRINCIPALS.join(', ')}, user:NAME or group:NAME`));
  }, { description: PRINCIPAL_DESCRIPTION, examples: ['anonymous', 'user:nancy', 'group:Ops'] });
}

const rights = (): Decoder<{ value: Right; loc: Loc }[]> => list(located(right()), { unique: { key: (r) => r.value, label: (r) => code(r.value) } });

/** One ACE: rights allowed and denied to one principal. */
export function ace(lookups: PrincipalLookups): Decoder<Ace> {
  const shape = obj(
    {
      principal: required(principal(lookups), 'add `principal: anonymous` (or authenticated, user:NAME, group:NAME, ...)', { description: PRINCIPAL_DESCRIPTION }),
      allow: optional(rights(), { description: 'Extended rights granted.' }),
      deny: optional(rights(), { description: 'Extended rights denied; a deny wins.' }),
    },
    { description: 'A permission entry: extended rights allowed or denied to one principal.', noun: 'this permission entry' },
  );
  return named('ace', refine(shape, (a, at) => {
    const allow = a.allow ?? [];
    const deny = a.deny ?? [];
    if (allow.length === 0 && deny.length === 0) return at.fail('this entry neither allows nor denies anything', 'add `allow: [...]` and/or `deny: [...]` with extended rights');
    const both = allow.find((r) => deny.some((d) => d.value === r.value));
    if (both !== undefined) {
      at.issues.add(both.loc, `${code(both.value)} is both allowed and denied in the same entry (deny would win)`, 'remove it from one of the lists');
      return BAD;
    }
    return { principal: a.principal, allow: allow.map((r) => r.value), deny: deny.map((r) => r.value), source: at.issues.ref(at) };
  }));
}

// --- open relay -----------------------------------------------------------------------------------

/**
 * The blocks no Internet client uses, per family: the rest is where an open relay's abusers
 * come from. IPv4: RFC 6890's special-purpose blocks (0/8, 10/8, 100.64/10, 127/8, 169.254/16,
 * 172.16/12, 192.168/16) and multicast and reserved 224/3 (RFC 5771, RFC 1112). IPv6: all but
 * global unicast 2000::/3 (RFC 4291 §2.4, IANA).
 */
const NOT_PUBLIC: Readonly<Record<IpFamily, readonly ParsedRange[]>> = {
  4: ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/3'].map(cidr),
  6: ['::/3', '4000::/2', '8000::/1'].map(cidr),
};

function cidr(text: string): ParsedRange {
  const r = parseIpRange(text);
  if (isParseFailure(r)) throw new Error(r.error);
  return r;
}

/**
 * "Nearly all": the ranges leave out at most a /8's worth (2^(width-8) addresses) of the public
 * space. A relay range is for hosts you run; the largest block one organisation was ever
 * assigned is a /8 (a former class A; 10.0.0.0/8, RFC 1918, is the largest private block), so
 * a union that misses no more than that lets practically the whole Internet relay.
 */
const slack = (family: IpFamily): bigint => 1n << BigInt(ADDRESS_BITS[family] - 8);

export interface RelayInputs {
  readonly ranges: readonly IpRange[];
  readonly mechanisms: readonly AuthMechanism[];
  readonly groups: readonly PermissionGroup[];
  readonly aces: readonly Ace[];
  readonly domainSecure: boolean;
}

/**
 * The principals a client holds without credentials on this connector (policies/mta/rights.rego
 * `base_principals`): externally_secured on an ExternalAuthoritative connector, otherwise
 * anonymous (and partner, by certificate, where Domain Secure is on).
 */
function credentialFree(c: RelayInputs): string[] {
  if (c.mechanisms.includes('ExternalAuthoritative')) return ['externally_secured'];
  return c.domainSecure ? ['anonymous', 'partner'] : ['anonymous'];
}

/** Whether `principal` ends up with `r`: allows from groups and ACEs, minus any deny (a deny wins). */
function holds(c: RelayInputs, principal: string, r: Right): boolean {
  const fromGroups = c.groups.some((g) => (PERMISSION_GROUPS[g] as Partial<Record<string, readonly Right[]>>)[principal]?.includes(r) === true);
  const allowed = fromGroups || c.aces.some((a) => a.principal === principal && a.allow.includes(r));
  return allowed && !c.aces.some((a) => a.principal === principal && a.deny.includes(r));
}

/** The credential-free principal that holds Accept-Any-Recipient on this connector, if any. */
function relayingPrincipal(c: RelayInputs): string | undefined {
  return credentialFree(c).find((p) => holds(c, p, RIGHT.acceptAnyRecipient));
}

/** How many public addresses of `family` the ranges leave out, or null when that is more than the slack. */
function openTo(ranges: readonly IpRange[], family: IpFamily): bigint | null {
  const own = ranges.filter((r) => r.family === family);
  if (own.length === 0) return null;
  const missing = uncoveredCount([...own, ...NOT_PUBLIC[family]], [allAddresses(family)]);
  return missing > slack(family) ? null : missing;
}

const coverText = (missing: bigint, family: IpFamily): string =>
  `${missing === 0n ? 'every' : `all but ${missing} of the`} public IPv${family} address${missing === 0n ? '' : 'es'}`;

function grantText(who: string): string {
  return who === 'externally_secured'
    ? `ExternalAuthoritative treats every client as an externally secured server, which holds ${RIGHT.acceptAnyRecipient}`
    : `principal ${code(who)} holds ${RIGHT.acceptAnyRecipient} without authentication`;
}

const RELAY_FIX = "limit remote_ip_ranges to the hosts that may relay (e.g. your LAN or the scanner's address)";

/**
 * Refuses a connector that lets clients without credentials relay (Accept-Any-Recipient) from
 * all or nearly all of an address family's public space: an open relay. (Exchange lets you
 * build one; Microsoft's guidance is never to.)
 */
export function checkOpenRelay(issues: Issues, at: Loc, c: RelayInputs): boolean {
  const who = relayingPrincipal(c);
  if (who === undefined) return true;
  for (const family of [4, 6] as const) {
    const missing = openTo(c.ranges, family);
    if (missing === null) continue;
    const everyone = c.ranges.find((r) => r.family === family && r.first === 0n && r.last === allAddresses(family).last);
    const what = everyone !== undefined ? `remote range ${code(everyone.text)} covers every address` : `remote_ip_ranges cover ${coverText(missing, family)}`;
    issues.add(at, `open relay: ${what} and ${grantText(who)}`, RELAY_FIX);
    return false;
  }
  return true;
}

/**
 * The same across connectors. A client is matched among the connectors of the binding it
 * reached — a specific local IP's and the wildcard's on that port — so relaying connectors
 * there add up: two halves of the address space in two connectors are one open relay. The
 * union is taken over every relaying connector a client of one local address can reach; a
 * more specific connector that does not relay is not subtracted (a client it matches cannot
 * relay there), so this can refuse a relay that is shadowed — split it differently, then.
 * Run on connectors each of which passed `checkOpenRelay`.
 */
export function checkOpenRelayAcross(issues: Issues, connectors: readonly ConnectorConfig[]): void {
  // "port/family" → local IP or '*' → the relaying connectors bound there.
  const groups = new Map<string, Map<string, Set<ConnectorConfig>>>();
  const who = new Map<ConnectorConfig, string>();
  for (const c of connectors) {
    const p = c.enabled ? relayingPrincipal({ ranges: c.remoteIpRanges, mechanisms: c.authMechanisms, groups: c.permissionGroups, aces: c.extendedRights, domainSecure: c.domainSecureEnabled }) : undefined;
    if (p === undefined) continue;
    who.set(c, p);
    for (const b of c.bindings) {
      const key = `${b.port}/${b.family}`;
      let byIp = groups.get(key);
      if (byIp === undefined) groups.set(key, (byIp = new Map()));
      let set = byIp.get(b.ip ?? '*');
      if (set === undefined) byIp.set(b.ip ?? '*', (set = new Set()));
      set.add(c);
    }
  }
  for (const [key, byIp] of groups) {
    const family = Number(key.split('/')[1]) as IpFamily;
    const wildcard = byIp.get('*') ?? new Set<ConnectorConfig>();
    const reachable: [string, ConnectorConfig[]][] = [];
    for (const [ip, set] of byIp) reachable.push([ip, ip === '*' ? [...set] : [...set, ...wildcard]]);
    // The wildcard alone first: when it is open, the specific addresses add nothing to say.
    reachable.sort(([a], [b]) => (a === '*' ? -1 : b === '*' ? 1 : 0));
    let wildcardOpen = false;
    for (const [ip, list] of reachable) {
      if (list.length < 2 || (ip !== '*' && wildcardOpen)) continue;
      const missing = openTo(list.flatMap((c) => c.remoteIpRanges), family);
      if (missing === null) continue;
      if (ip === '*') wildcardOpen = true;
      const last = list[list.length - 1] as ConnectorConfig;
      const names = list.map((c) => code(c.name)).join(', ');
      const port = key.split('/')[0] ?? '';
      const where = ip === '*' ? `port ${port}` : `${family === 6 ? `[${ip}]` : ip}:${port}`;
      issues.addAt(
        last.source,
        `open relay: connectors ${names} together let clients on ${where} relay from ${coverText(missing, family)} (${grantText(who.get(last) ?? 'anonymous')})`,
        RELAY_FIX,
      );
    }
  }
}
