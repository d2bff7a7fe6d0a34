/** Building the server, accepted domains, users and reply overrides from the schema-checked data. */
import { REPLY_CATALOGUE, isReason } from '../replies.js';
import type { AcceptedDomain, Dialect, Reply, ServerConfig, UserIdentity } from './types.js';
import { isParseFailure, parseIp } from '../ip.js';
import type { Context } from './context.js';
import { REQUIRED_HINTS, code, isRecord } from './messages.js';
import type { Path } from './messages.js';
import { normaliseAddress, normaliseDomain, normaliseHost } from './names.js';
import type { RawAcceptedDomain, RawReplies, RawServer, RawUser } from './raw.js';

const DEFAULT_ORG_PREFIXES = ['X-MS-Exchange-Organization-', 'X-MTA-Policy-'];
const DEFAULT_FOREST_PREFIXES = ['X-MS-Exchange-Forest-'];

/** A shallow copy of `raw` without `fields` (values the schema rejected). */
export function withoutFields<T extends object>(raw: T, fields: ReadonlySet<string>): T {
  if (fields.size === 0) return raw;
  return Object.fromEntries(Object.entries(raw).filter(([k]) => !fields.has(k))) as T;
}

// --- replies -------------------------------------------------------------------------------------

export function buildReplies(ctx: Context, path: Path, raw: RawReplies | undefined): Record<string, Reply> {
  const out: Record<string, Reply> = {};
  if (raw === undefined) return out;
  for (const [reason, r] of Object.entries(raw)) {
    const p = [...path, reason];
    if (!ctx.isClean(p) || !isReason(reason)) continue;
    const cls = String(r.code)[0] ?? '';
    // A success reason keeps a success reply; a refusal stays a refusal; an engine failure is
    // always temporary, never permanent.
    const success = reason.startsWith('ok_');
    const allowed = success ? ['2', '3'] : reason.startsWith('engine_error') ? ['4'] : ['4', '5'];
    if (!allowed.includes(cls)) {
      const what = success ? 'a success reply (2xx/3xx)' : reason.startsWith('engine_error') ? 'a temporary failure (4xx)' : 'a refusal (4xx or 5xx)';
      ctx.add([...p, 'code'], `reason ${code(reason)} needs ${what}, not ${r.code}`, `use the default ${REPLY_CATALOGUE[reason].exchange.code} or another code of that class`);
      continue;
    }
    if (r.disconnect === true && success) {
      ctx.add([...p, 'disconnect'], 'only a refusal can close the connection', 'remove `disconnect`');
      continue;
    }
    const dflt = REPLY_CATALOGUE[reason].exchange.enhanced;
    const example = dflt !== '' && dflt[0] === cls ? dflt : `${cls}.7.1`;
    if (r.enhanced === '') {
      if (r.code >= 400) {
        ctx.add([...p, 'enhanced'], `a ${cls}xx reply needs an enhanced status code`, `e.g. ${code(`enhanced: ${example}`)}`);
        continue;
      }
    } else if (r.enhanced[0] !== cls) {
      const fix = cls === '2' || cls === '4' || cls === '5' ? `use class ${cls}, e.g. ${code(example)}` : `use ${code('""')} for a ${cls}xx reply`;
      ctx.add([...p, 'enhanced'], `enhanced status code ${code(r.enhanced)} has class ${r.enhanced[0] ?? ''} but reply code ${r.code} is class ${cls}`, fix);
      continue;
    }
    out[reason] = {
      code: r.code,
      enhanced: r.enhanced,
      text: r.text,
      ...(r.disconnect === undefined ? {} : { disconnect: r.disconnect }),
    };
  }
  return out;
}

// --- server ------------------------------------------------------------------------------------------

export function buildServer(ctx: Context, value: unknown): ServerConfig {
  const base: Path = ['server'];
  const raw: Partial<RawServer> = isRecord(value) ? (value as Partial<RawServer>) : {};
  let fqdn = 'localhost';
  if (ctx.isClean([...base, 'fqdn']) && typeof raw.fqdn === 'string') {
    const h = normaliseHost(raw.fqdn);
    if (isParseFailure(h)) ctx.add([...base, 'fqdn'], h.error, h.fix);
    else fqdn = h;
  }
  const localAddresses: string[] = [];
  {
    const seen = new Map<string, number>();
    for (const [text, p] of ctx.items([...base, 'local_addresses'], raw.local_addresses)) {
      const ip = parseIp(text);
      if (ip === null) {
        ctx.add(p, `${code(text)} is not an IP address`, 'write an IPv4 or IPv6 address, e.g. 192.0.2.10');
      } else if (ip.value === 0n) {
        ctx.add(p, `${code(text)} is the unspecified address, not one of this server's addresses`, 'list the actual addresses');
      } else if (seen.has(ip.text)) {
        ctx.add(p, `${code(ip.text)} is listed twice (also at line ${seen.get(ip.text) ?? '?'})`, 'remove one');
      } else {
        seen.set(ip.text, ctx.line(p) ?? 0);
        localAddresses.push(ip.text);
      }
    }
  }
  const domainSecureDomains: string[] = [];
  {
    const seen = new Map<string, number>();
    for (const [text, p] of ctx.items([...base, 'domain_secure_domains'], raw.domain_secure_domains)) {
      const d = normaliseDomain(text, false);
      if (isParseFailure(d)) ctx.add(p, d.error, d.fix);
      else if (seen.has(d.domain)) ctx.add(p, `${code(d.domain)} is listed twice (also at line ${seen.get(d.domain) ?? '?'})`, 'remove one');
      else {
        seen.set(d.domain, ctx.line(p) ?? 0);
        domainSecureDomains.push(d.domain);
      }
    }
  }
  const dialect: Dialect = ctx.isClean([...base, 'dialect']) && raw.dialect !== undefined ? raw.dialect : 'exchange';
  const orgPrefixes =
    ctx.isClean([...base, 'organization_header_prefixes']) && raw.organization_header_prefixes !== undefined
      ? raw.organization_header_prefixes
      : DEFAULT_ORG_PREFIXES;
  const forestPrefixes =
    ctx.isClean([...base, 'forest_header_prefixes']) && raw.forest_header_prefixes !== undefined
      ? raw.forest_header_prefixes
      : DEFAULT_FOREST_PREFIXES;
  const replies = buildReplies(ctx, [...base, 'replies'], raw.replies);
  return {
    fqdn,
    dialect,
    localAddresses,
    domainSecureDomains,
    organizationHeaderPrefixes: [...orgPrefixes],
    forestHeaderPrefixes: [...forestPrefixes],
    replies,
  };
}

// --- accepted domains --------------------------------------------------------------------------------

export function buildAcceptedDomains(ctx: Context, value: unknown): AcceptedDomain[] {
  const out: AcceptedDomain[] = [];
  if (!Array.isArray(value)) return out;
  const seen = new Map<string, number>();
  value.forEach((item: unknown, i) => {
    const p: Path = ['accepted_domains', i];
    const taint = ctx.taintOf(p);
    if (taint.self || taint.fields.has('domain')) return;
    const raw = withoutFields(item as RawAcceptedDomain, taint.fields);
    const d = normaliseDomain(raw.domain, true);
    if (isParseFailure(d)) {
      ctx.add([...p, 'domain'], d.error, d.fix);
      return;
    }
    const key = `${d.wildcard ? '*.' : ''}${d.domain}`;
    // `com` or `*.com` would accept (and relay to) a whole top-level domain.
    if (!d.domain.includes('.')) {
      ctx.add([...p, 'domain'], `accepted domain ${code(key)} is a whole top-level domain`, 'name your own domain, e.g. northwind.test or *.northwind.test');
      return;
    }
    const other = seen.get(key);
    if (other !== undefined) {
      ctx.add([...p, 'domain'], `accepted domain ${code(key)} is listed twice (also at line ${other})`, 'remove one of them');
      return;
    }
    seen.set(key, ctx.line([...p, 'domain']) ?? 0);
    out.push({ domain: d.domain, wildcard: d.wildcard, type: raw.type ?? 'authoritative', text: raw.domain.trim(), source: ctx.ref(p) });
  });
  return out;
}

// --- users -------------------------------------------------------------------------------------------------

interface LoginClaim {
  readonly user: number;
  readonly path: Path;
  readonly kind: 'name' | 'address' | 'login';
}

export function buildUsers(ctx: Context, value: unknown): { users: UserIdentity[]; identitiesClean: boolean } {
  let allClean = ctx.isClean(['identities']);
  const usersValue = isRecord(value) ? value['users'] : undefined;
  const users: UserIdentity[] = [];
  if (!Array.isArray(usersValue)) return { users, identitiesClean: allClean };
  const names = new Map<string, { line: number; name: string }>();
  const owners = new Map<string, { user: string; line: number }>();
  const logins = new Map<string, LoginClaim[]>();
  const userNames: string[] = [];
  const claim = (login: string, c: LoginClaim): void => {
    const list = logins.get(login) ?? [];
    list.push(c);
    logins.set(login, list);
  };

  usersValue.forEach((item: unknown, i) => {
    const p: Path = ['identities', 'users', i];
    const taint = ctx.taintOf(p);
    if (taint.any) allClean = false;
    if (taint.self || taint.fields.has('name')) return;
    const raw = withoutFields(item as RawUser, taint.fields);
    const idx = users.length;
    const name = raw.name.trim();
    if (name === '') {
      ctx.add([...p, 'name'], 'a user name must not be blank', REQUIRED_HINTS['name']);
      allClean = false;
      return;
    }
    const lower = name.toLowerCase();
    const prev = names.get(lower);
    if (prev !== undefined) {
      ctx.add([...p, 'name'], `user name ${code(name)} is already used by ${code(prev.name)} at line ${prev.line} (names are case-insensitive)`, 'rename one of them');
      allClean = false;
      return;
    }
    names.set(lower, { line: ctx.line([...p, 'name']) ?? 0, name });
    claim(lower, { user: idx, path: [...p, 'name'], kind: 'name' });

    const addresses: string[] = [];
    for (const [text, ap] of ctx.items([...p, 'addresses'], raw.addresses)) {
      const a = normaliseAddress(text);
      if (isParseFailure(a)) {
        ctx.add(ap, a.error, a.fix);
        continue;
      }
      if (addresses.includes(a)) {
        ctx.add(ap, `${code(a)} is listed twice for this user`, 'remove one');
        continue;
      }
      const owner = owners.get(a);
      if (owner !== undefined) {
        ctx.add(ap, `${code(a)} already belongs to user ${code(owner.user)} (line ${owner.line})`, 'an address belongs to one identity only; use send_as to let others send as it');
        continue;
      }
      owners.set(a, { user: name, line: ctx.line(ap) ?? 0 });
      addresses.push(a);
      claim(a, { user: idx, path: ap, kind: 'address' });
    }

    const groups: string[] = [];
    for (const [g, gp] of ctx.items([...p, 'groups'], raw.groups)) {
      const t = g.trim();
      if (t === '') ctx.add(gp, 'a group name must not be blank', 'remove it');
      else if (groups.some((x) => x.toLowerCase() === t.toLowerCase())) ctx.add(gp, `group ${code(t)} is listed twice for this user`, 'remove one');
      else groups.push(t);
    }

    const sendAs: string[] = [];
    for (const [text, sp] of ctx.items([...p, 'send_as'], raw.send_as)) {
      const a = normaliseAddress(text);
      if (isParseFailure(a)) ctx.add(sp, a.error, a.fix);
      else if (sendAs.includes(a)) ctx.add(sp, `${code(a)} is listed twice in send_as`, 'remove one');
      else if (!addresses.includes(a)) sendAs.push(a);
    }

    const userLogins = new Set<string>([lower, ...addresses]);
    for (const [l, lp] of ctx.items([...p, 'logins'], raw.logins)) {
      const t = l.trim().toLowerCase();
      if (t === '') ctx.add(lp, 'a login name must not be blank', 'remove it');
      else if (/[\s\p{Cc}]/u.test(t)) ctx.add(lp, `login name ${code(l)} contains white space or control characters`, 'remove them');
      else if (!userLogins.has(t)) {
        userLogins.add(t);
        claim(t, { user: idx, path: lp, kind: 'login' });
      }
    }

    userNames.push(name);
    users.push({ name, addresses, groups, sendAs, logins: [...userLogins], source: ctx.ref(p) });
  });

  for (const [login, claims] of logins) {
    const first = claims[0];
    if (first === undefined) continue;
    const reported = new Set<number>([first.user]);
    for (const c of claims.slice(1)) {
      if (reported.has(c.user)) continue;
      reported.add(c.user);
      if (c.kind === 'address' && first.kind === 'address') continue; // reported as an address conflict
      const firstUser = users[first.user]?.name ?? '?';
      ctx.add(
        c.path,
        `login name ${code(login)} already identifies user ${code(firstUser)} (line ${ctx.line(first.path) ?? '?'})`,
        'each login name (user name, address or explicit login) must identify one user only',
      );
    }
  }
  return { users, identitiesClean: allClean };
}
