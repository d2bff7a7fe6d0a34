/** The `server`, `accepted_domains` and `identities` sections. */
import { asciiLower } from '../util.js';
import { code } from './issues.js';
import type { Loc } from './issues.js';
import { BAD, list, located, named, obj, optional, refine, required, withDefault, type Decoder } from './decode.js';
import { oneOf, parsed, string } from './scalars.js';
import { parseAuthSocket, type SocketAddress } from './endpoints.js';
import { passwordHash, readableFile, tlsFiles } from './secrets.js';
import type { PrincipalLookups } from './rights.js';
import { address, domain, headerPrefix, host, ipAddress, nextHop, replies } from './values.js';
import { ACCEPTED_DOMAIN_TYPES, DIALECTS, type AcceptedDomain, type ServerConfig, type UserIdentity } from './types.js';

const listedOnce = <T>(key: (v: T) => string) => ({ unique: { key, label: (v: T) => code(key(v)) } });

/** The `server` section; `configFile` anchors relative paths. */
export const serverSection = (configFile: string): Decoder<ServerConfig> => named(
  'server',
  refine(
    obj(
      {
        fqdn: required(host(), 'add `fqdn: smtp.example.com`', {
          description: 'Fully qualified host name of this server; the default connector FQDN used in the banner and the EHLO reply.',
        }),
        dialect: withDefault(oneOf(DIALECTS), 'exchange', {
          description: 'Reply wording: `exchange` (Exchange 2016/2019 strings) or `rfc` (RFC 5321/4954/6409 replies, Postfix wording). Connectors may override it.',
        }),
        local_addresses: withDefault(list(ipAddress(), listedOnce((ip) => ip.text)), [], {
          description: "This server's own IP addresses: a recipient `user@[ip]` with one of them is local, not relayed.",
          examples: [['192.0.2.10', '2001:db8::10']],
        }),
        domain_secure_domains: withDefault(list(domain(false), listedOnce((d) => d.domain)), [], {
          description:
            'Sender domains whose mail must arrive over mutual TLS from a server with a matching certificate (Exchange: Set-TransportConfig -TLSReceiveDomainSecureList). Used by connectors with domain_secure_enabled.',
        }),
        organization_header_prefixes: withDefault(list(headerPrefix()), ['X-MS-Exchange-Organization-', 'X-MTA-Policy-'], {
          description: 'Header-name prefixes only sessions with ms-Exch-Accept-Headers-Organization may carry; others have them stripped.',
        }),
        forest_header_prefixes: withDefault(list(headerPrefix()), ['X-MS-Exchange-Forest-'], {
          description: 'Header-name prefixes only sessions with ms-Exch-Accept-Headers-Forest may carry; others have them stripped.',
        }),
        replies: withDefault(replies(), {}, { description: 'Server-wide reply overrides by reason, for both dialects. Connector overrides take precedence.' }),
        tls: optional(tlsFiles(configFile), { description: 'Default certificate and key of every connector (for STARTTLS and implicit TLS).' }),
        next_hop: optional(nextHop(configFile), { description: 'Default next hop of every connector: where accepted mail goes.' }),
      },
      { description: 'Server-wide settings (Exchange: the transport server and Set-TransportConfig).' },
    ),
    (s) => ({
      fqdn: s.fqdn,
      dialect: s.dialect,
      localAddresses: s.local_addresses.map((ip) => ip.text),
      domainSecureDomains: s.domain_secure_domains.map((d) => d.domain),
      organizationHeaderPrefixes: s.organization_header_prefixes,
      forestHeaderPrefixes: s.forest_header_prefixes,
      replies: s.replies,
      ...(s.tls === undefined ? {} : { tls: s.tls }),
      ...(s.next_hop === undefined ? {} : { nextHop: s.next_hop }),
    }),
  ),
);

const acceptedDomain = named(
  'acceptedDomain',
  refine(
    obj(
      {
        domain: required(located(domain(true)), 'add `domain: example.com`', {
          description: 'Domain name, or `*.domain` for all its subdomains (the wildcard only as the whole first label). Unicode names are converted to A-labels; a trailing dot is ignored.',
        }),
        type: withDefault(oneOf(ACCEPTED_DOMAIN_TYPES), 'authoritative', {
          description:
            'authoritative: all recipients are in this organisation; internal_relay: some recipients are elsewhere (shared namespace); external_relay: no recipients here, mail is relayed on.',
        }),
      },
      { description: 'An accepted domain (Exchange: New-AcceptedDomain).', noun: 'this accepted domain' },
    ),
    (d, at): (AcceptedDomain & { loc: Loc }) | typeof BAD => {
      const { domain: name, wildcard, text } = d.domain.value;
      // `com` or `*.com` would accept (and relay to) a whole top-level domain.
      if (!name.includes('.')) {
        at.issues.add(d.domain.loc, `accepted domain ${code(`${wildcard ? '*.' : ''}${name}`)} is a whole top-level domain`, 'name your own domain, e.g. northwind.test or *.northwind.test');
        return BAD;
      }
      return { domain: name, wildcard, type: d.type, text, source: at.issues.ref(at), loc: d.domain.loc };
    },
  ),
);

const domainKey = (d: AcceptedDomain): string => `${d.wildcard ? '*.' : ''}${d.domain}`;

export const ACCEPTED_DOMAINS: Decoder<AcceptedDomain[]> = refine(
  list(acceptedDomain, { unique: { key: domainKey, label: (d) => `accepted domain ${code(domainKey(d))}`, loc: (d) => d.loc } }),
  (ds) => ds.map(({ loc: _loc, ...d }) => d),
);

/** A login name as AUTH sends it, compared with ASCII-only case folding. */
const login = refine(string({ minLength: 1, emptyFix: 'remove it' }), (l, at) =>
  // eslint-disable-next-line no-control-regex
  /[\s\u0000-\u001f\u007f]/u.test(l.trim()) ? at.fail(`login name ${code(l)} contains white space or control characters`, 'remove them') : asciiLower(l.trim()),
);

const user = named(
  'user',
  obj(
    {
      name: required(string({ minLength: 1, emptyFix: 'add `name: ...`' }), 'add `name: ...`', {
        description: 'Unique name (case-insensitive); also an AUTH login name. Principal `user:NAME` refers to it.',
        examples: ['nancy'],
      }),
      addresses: withDefault(list(located(address()), listedOnce((a) => a.value)), [], {
        description: 'Email addresses of this identity; the first is the primary. Each address belongs to one identity only, and each is also an AUTH login name.',
      }),
      groups: withDefault(list(string({ minLength: 1, emptyFix: 'remove it' }), { unique: { key: (g) => asciiLower(g.trim()), label: (g) => `group ${code(g.trim())}` } }), [], {
        description: 'Groups this identity is in (case-insensitive). Principal `group:NAME` refers to them; members of "Exchange Servers" authenticate as Exchange servers.',
        examples: [['Ops'], ['Exchange Servers']],
      }),
      send_as: withDefault(list(address(), listedOnce((a) => a)), [], {
        description: 'Addresses this identity may send as, beyond its own (Exchange: Send-As permission).',
      }),
      logins: withDefault(list(located(login)), [], {
        description: 'Extra AUTH login names (case-insensitive), e.g. DOMAIN\\user. The name and the addresses are login names already.',
      }),
      password: optional(passwordHash(), { description: 'Password hash for the listener\'s own AUTH check: {ARGON2ID}, {BCRYPT}/{BLF-CRYPT} or {SHA512-CRYPT} followed by the hash.' }),
    },
    { description: 'A user or server identity.', noun: 'this user' },
  ),
);

interface Claim {
  readonly user: number;
  readonly name: string;
  readonly loc: Loc;
  readonly kind: 'name' | 'address' | 'login';
}

/**
 * The users, with the rules across them: names are unique, an address belongs to one user, and
 * every login name (user name, address or explicit login) identifies one user only.
 */
const users = refine(list(located(user)), (items, at) => {
  const issues = at.issues;
  const out: UserIdentity[] = [];
  const names = new Map<string, { line: number; name: string }>();
  const claims = new Map<string, Claim>();
  let ok = true;
  const fail = (loc: Loc, message: string, fix: string): void => {
    issues.add(loc, message, fix);
    ok = false;
  };
  // The first claim of a login name wins.
  const claim = (login: string, c: Claim): void => {
    const first = claims.get(login);
    if (first === undefined) claims.set(login, c);
    else if (first.user !== c.user) {
      fail(c.loc, `login name ${code(login)} already identifies user ${code(first.name)} (line ${issues.line(first.loc) ?? '?'})`, 'each login name (user name, address or explicit login) must identify one user only');
    }
  };
  for (const { value: u, loc } of items) {
    const name = u.name.trim();
    const lower = asciiLower(name);
    const nameAt = u.where.value('name');
    const prev = names.get(lower);
    if (prev !== undefined) {
      fail(nameAt, `user name ${code(name)} is already used by ${code(prev.name)} at line ${prev.line} (names are case-insensitive)`, 'rename one of them');
      continue;
    }
    names.set(lower, { line: issues.line(nameAt) ?? 0, name });
    const idx = out.length;
    claim(lower, { user: idx, name, loc: nameAt, kind: 'name' });
    const addresses: string[] = [];
    for (const a of u.addresses) {
      const owner = claims.get(a.value);
      if (owner?.kind === 'address') {
        fail(a.loc, `${code(a.value)} already belongs to user ${code(owner.name)} (line ${issues.line(owner.loc) ?? '?'})`, 'an address belongs to one identity only; use send_as to let others send as it');
        continue;
      }
      addresses.push(a.value);
      claim(a.value, { user: idx, name, loc: a.loc, kind: 'address' });
    }
    const logins = new Set<string>([lower, ...addresses]);
    for (const l of u.logins) {
      if (logins.has(l.value)) continue;
      logins.add(l.value);
      claim(l.value, { user: idx, name, loc: l.loc, kind: 'login' });
    }
    const sendAs = u.send_as.filter((a) => !addresses.includes(a));
    const password = u.password === undefined ? {} : { password: u.password };
    out.push({ name, addresses, groups: u.groups.map((g) => g.trim()), sendAs, logins: [...logins], ...password, source: issues.ref(loc) });
  }
  return ok ? out : BAD;
});

export interface Identities {
  readonly users: readonly UserIdentity[];
  readonly unlistedLogins: 'reject' | 'authenticated';
  readonly passwdFile?: string;
  readonly dovecotAuth?: SocketAddress;
}

/** The `identities` section; `configFile` anchors the passwd-file's path. */
export const identitiesSection = (configFile: string): Decoder<Identities> => named(
  'identities',
  refine(
    obj(
      {
        users: withDefault(users, [], { description: 'Users and servers that authenticate with SMTP AUTH.' }),
        unlisted_logins: withDefault(oneOf(['reject', 'authenticated']), 'reject', {
          description:
            "A login the credential check accepts but no user lists: `reject` (default) refuses it like bad credentials, so an alias cannot dodge a user's deny entries; `authenticated` lets it in as an authenticated user with no groups, sending as exactly its login.",
        }),
        passwd_file: optional(readableFile(configFile, 'passwd-file'), { description: 'A Dovecot passwd-file (name:{SCHEME}hash lines) with more credentials; relative to the configuration file.' }),
        dovecot_auth: optional(parsed(parseAuthSocket, { pattern: '^\\s*(?:inet:\\S+:[0-9]+|unix:/\\S*)\\s*$', examples: ['unix:/run/dovecot/auth-client', 'inet:127.0.0.1:12345'] }), {
          description: "Dovecot's auth socket (unix:/path or inet:HOST:PORT): credentials are checked there when set.",
        }),
      },
      { description: 'Users and servers that can authenticate with SMTP AUTH, their addresses and groups.' },
    ),
    (i) => ({
      users: i.users,
      unlistedLogins: i.unlisted_logins,
      ...(i.passwd_file === undefined ? {} : { passwdFile: i.passwd_file }),
      ...(i.dovecot_auth === undefined ? {} : { dovecotAuth: i.dovecot_auth }),
    }),
  ),
);

/** What principals `user:NAME` and `group:NAME` can name, from the decoded users. */
export function principalLookups(users: readonly UserIdentity[], reliable: boolean): PrincipalLookups {
  const userNames = new Map(users.map((u) => [asciiLower(u.name), u.name]));
  const groupNames = new Map<string, string>();
  for (const u of users) for (const g of u.groups) if (!groupNames.has(asciiLower(g))) groupNames.set(asciiLower(g), g);
  return { userNames, groupNames, reliable };
}

