import type { ParsedBinding, ParsedRange } from '../ip.js';
import type { Reply } from '../reply.js';
import type { NextHop, SocketAddress } from './endpoints.js';
import type { TlsFiles } from './secrets.js';

export type { NextHop, SocketAddress } from './endpoints.js';
export type { TlsFiles } from './secrets.js';

/**
 * The validated, normalised configuration. `loadConfig()` produces it from one YAML file;
 * `compileData()` (engine/data.ts) turns it into the OPA data document the Rego reads.
 * Nothing here is mutated after validation.
 */

export const DIALECTS = ['exchange', 'rfc'] as const;
export type Dialect = (typeof DIALECTS)[number];
export const USAGES = ['client', 'internet', 'internal', 'partner', 'custom'] as const;
export type Usage = (typeof USAGES)[number];
export const PERMISSION_GROUP_NAMES = ['AnonymousUsers', 'ExchangeUsers', 'ExchangeServers', 'ExchangeLegacyServers', 'Partners'] as const;
export type PermissionGroup = (typeof PERMISSION_GROUP_NAMES)[number];
export const AUTH_MECHANISMS = ['None', 'Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'ExternalAuthoritative'] as const;
export type AuthMechanism = (typeof AUTH_MECHANISMS)[number];
export const ACCEPTED_DOMAIN_TYPES = ['authoritative', 'internal_relay', 'external_relay'] as const;
export type AcceptedDomainType = (typeof ACCEPTED_DOMAIN_TYPES)[number];
export const MESSAGE_RATE_SOURCES = ['user', 'ip_address', 'all'] as const;
export type MessageRateSource = (typeof MESSAGE_RATE_SOURCES)[number];

/**
 * Extended rights, spelled as Exchange spells them (the one list: the engine's permission
 * groups and the decision's rights mask derive from it). Config accepts any letter case and
 * normalises to these spellings.
 */
export const RIGHT = {
  submit: 'ms-Exch-SMTP-Submit',
  submitForMls: 'ms-Exch-SMTP-Submit-For-MLS',
  acceptAnyRecipient: 'ms-Exch-SMTP-Accept-Any-Recipient',
  acceptAnySender: 'ms-Exch-SMTP-Accept-Any-Sender',
  acceptAuthoritativeDomainSender: 'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender',
  acceptAuthenticationFlag: 'ms-Exch-SMTP-Accept-Authentication-Flag',
  acceptHeadersRouting: 'ms-Exch-Accept-Headers-Routing',
  acceptHeadersOrganization: 'ms-Exch-Accept-Headers-Organization',
  acceptHeadersForest: 'ms-Exch-Accept-Headers-Forest',
  bypassAntiSpam: 'ms-Exch-Bypass-Anti-Spam',
  bypassMessageSizeLimit: 'ms-Exch-Bypass-Message-Size-Limit',
  acceptExch50: 'ms-Exch-SMTP-Accept-Exch50',
} as const;

/** Internal Exchange-to-Exchange rights (granted to Exchange Servers only). */
export const INTERNAL_RIGHT = {
  acceptXAttr: 'ms-Exch-SMTP-Accept-XAttr',
  acceptXProxyFrom: 'ms-Exch-SMTP-Accept-XProxyFrom',
  acceptXSessionParams: 'ms-Exch-SMTP-Accept-XSessionParams',
  acceptXShadow: 'ms-Exch-SMTP-Accept-XShadow',
  acceptXSysProbe: 'ms-Exch-SMTP-Accept-XSysProbe',
  sendXMessageContextADRecipientCache: 'ms-Exch-SMTP-Send-XMessageContext-ADRecipientCache',
  sendXMessageContextExtendedProperties: 'ms-Exch-SMTP-Send-XMessageContext-ExtendedProperties',
  sendXMessageContextFastIndex: 'ms-Exch-SMTP-Send-XMessageContext-FastIndex',
} as const;

export type Right = (typeof RIGHT)[keyof typeof RIGHT] | (typeof INTERNAL_RIGHT)[keyof typeof INTERNAL_RIGHT];
/** Every right, in a fixed order (the decision's rights mask uses each one's index). */
export const RIGHTS: readonly Right[] = [...Object.values(RIGHT), ...Object.values(INTERNAL_RIGHT)];

/**
 * Well-known principals a session can hold. Per-identity principals are `user:<name>` and
 * `group:<name>` (names lower-cased).
 */
export const WELL_KNOWN_PRINCIPALS = [
  'anonymous',
  'authenticated',
  'externally_secured',
  'partner',
  'exchange_servers',
  'exchange_legacy_servers',
] as const;
export type WellKnownPrincipal = (typeof WELL_KNOWN_PRINCIPALS)[number];

/** Where a value came from, for error messages raised after validation (e.g. overlaps). */
export interface SourceRef {
  readonly file: string;
  readonly line?: number;
  readonly path: string;
}

/** A remote range (CIDRs and single IPs are ranges too), as configured. */
export interface IpRange extends ParsedRange {
  /** As written in the config (trimmed), e.g. `198.18.7.1-198.18.7.30`. */
  readonly text: string;
  readonly source: SourceRef;
}

/** A local binding; `text` is canonical (`0.0.0.0:25`, `[::]:587`, `[2001:db8::1]:25`), `ip` null for the wildcard. */
export interface Binding extends ParsedBinding {
  readonly source: SourceRef;
}

export type { Reply } from '../reply.js';

export interface Ace {
  /** A well-known principal, `user:<name>` or `group:<name>` (lower-cased names). */
  readonly principal: string;
  readonly allow: readonly Right[];
  readonly deny: readonly Right[];
  readonly source: SourceRef;
}

export interface ConnectorConfig {
  readonly name: string;
  readonly enabled: boolean;
  readonly usage: Usage;
  readonly bindings: readonly Binding[];
  readonly remoteIpRanges: readonly IpRange[];
  readonly permissionGroups: readonly PermissionGroup[];
  readonly authMechanisms: readonly AuthMechanism[];
  readonly requireTls: boolean;
  /** Connector FQDN for banner and EHLO; defaults to server.fqdn. */
  readonly fqdn: string;
  /** Banner text after `220 ` (without the code); null = default `<fqdn> ESMTP`. */
  readonly banner: string | null;
  readonly dialect: Dialect;
  /** Bytes; null = unlimited. */
  readonly maxMessageSize: number | null;
  readonly maxHeaderSize: number | null;
  readonly maxRecipientsPerMessage: number | null;
  readonly maxInboundConnection: number | null;
  readonly maxInboundConnectionPerSource: number | null;
  /** Messages per minute; null = unlimited. */
  readonly messageRateLimit: number | null;
  readonly messageRateSource: MessageRateSource;
  /** 0 = never disconnect for logon failures. */
  readonly maxLogonFailures: number;
  readonly maxHopCount: number;
  readonly requireEhloDomain: boolean;
  readonly domainSecureEnabled: boolean;
  /** SASL mechanism names offered for BasicAuth (e.g. PLAIN, LOGIN), upper-case. */
  readonly basicAuthMechanisms: readonly string[];
  readonly extendedRights: readonly Ace[];
  /** Per-connector reply overrides by reason. */
  readonly replies: Readonly<Record<string, Reply>>;
  /** The connector's certificate, else server.tls; null when neither is set. */
  readonly tls: TlsFiles | null;
  /** TLS from the first byte (RFC 8314) instead of STARTTLS; default: every binding is on port 465. */
  readonly implicitTls: boolean;
  /** Served by mta-policy's own listener; default: the configuration has no milter or postfix_policy. */
  readonly listen: boolean;
  /** Where accepted mail goes: the connector's next_hop, else server.next_hop; null when neither is set. */
  readonly nextHop: NextHop | null;
  readonly source: SourceRef;
}

export interface AcceptedDomain {
  /** Lower-case A-label, no trailing dot, without the `*.` prefix. */
  readonly domain: string;
  readonly wildcard: boolean;
  readonly type: AcceptedDomainType;
  /** As written. */
  readonly text: string;
  readonly source: SourceRef;
}

export interface UserIdentity {
  readonly name: string;
  /** Lower-cased full addresses (`local@a-label-domain`). The first is the primary address. */
  readonly addresses: readonly string[];
  /** Group names as written (matching is case-insensitive). */
  readonly groups: readonly string[];
  /** Lower-cased addresses this user may send as, beyond its own. */
  readonly sendAs: readonly string[];
  /** Lower-cased AUTH login names that map to this identity (name and addresses included). */
  readonly logins: readonly string[];
  /** Password hash with its `{SCHEME}` prefix (scheme upper-cased); absent when not configured. */
  readonly password?: string;
  readonly source: SourceRef;
}

export interface ServerConfig {
  readonly fqdn: string;
  readonly dialect: Dialect;
  /** Canonical IPs that are this server's own: `user@[ip]` literals for them are local. */
  readonly localAddresses: readonly string[];
  /** Sender domains whose mail must arrive over mutual TLS (Exchange TLSReceiveDomainSecureList). */
  readonly domainSecureDomains: readonly string[];
  /** Header name prefixes that only sessions with Accept-Headers-Organization may carry. */
  readonly organizationHeaderPrefixes: readonly string[];
  /** Header name prefixes that only sessions with Accept-Headers-Forest may carry. */
  readonly forestHeaderPrefixes: readonly string[];
  /** Server-wide reply overrides by reason (both dialects). */
  readonly replies: Readonly<Record<string, Reply>>;
  /** Default certificate for every connector. */
  readonly tls?: TlsFiles;
  /** Default next hop for every connector. */
  readonly nextHop?: NextHop;
}

/** A milter or policy-server listener. */
export interface AdapterListener {
  readonly listen: SocketAddress;
  readonly source: SourceRef;
}

export interface Config {
  /** Absolute path of the file it was loaded from (or a label for in-memory text). */
  readonly file: string;
  readonly server: ServerConfig;
  readonly acceptedDomains: readonly AcceptedDomain[];
  readonly users: readonly UserIdentity[];
  /** What a login no user lists gets: refused, or an authenticated user with no groups. */
  readonly unlistedLogins: 'reject' | 'authenticated';
  /** Absolute path of a Dovecot passwd-file (`name:{SCHEME}hash`), readable when loaded. */
  readonly passwdFile?: string;
  /** Dovecot's auth socket, for credential checks. */
  readonly dovecotAuth?: SocketAddress;
  readonly connectors: readonly ConnectorConfig[];
  /** The milter listener (Postfix/Sendmail), when configured. */
  readonly milter?: AdapterListener;
  /** The Postfix policy-delegation listener, when configured. */
  readonly postfixPolicy?: AdapterListener;
}
