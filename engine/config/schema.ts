/**
 * The published JSON Schema (draft 2020-12) of the configuration file.
 *
 * It checks the *shape* of the file (keys, types, closed sets, simple ranges) and gives editors
 * descriptions and completions. Everything that needs parsing or cross-references (IP ranges,
 * bindings, domains, addresses, principals, connector conflicts) is checked in engine/config/load.ts.
 *
 * `schema/config.schema.json` is generated from this file by engine/config/write-schema.ts.
 */
import { REPLY_CATALOGUE, REASONS } from '../replies.js';
import { RIGHTS } from './types.js';
import { BYTE_SIZE_PATTERN } from './units.js';

export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };
export type JsonSchema = { readonly [key: string]: Json };

export const SCHEMA_ID = 'urn:mta-policy:config:v1';

/** A regular expression source matching `word` in any letter case: `ab-1` → `[aA][bB]\-1`. */
export function caseInsensitivePattern(word: string): string {
  let out = '';
  for (const ch of word) {
    const lo = ch.toLowerCase();
    const up = ch.toUpperCase();
    if (lo !== up) out += `[${lo}${up}]`;
    else out += ch.replace(/[\\^$.*+?()[\]{}|/]/g, (c) => `\\${c}`);
  }
  return out;
}

/** Anchored alternation of case-insensitive words. */
export function anyOfWordsPattern(words: readonly string[]): string {
  return `^(?:${words.map(caseInsensitivePattern).join('|')})$`;
}

export const PERMISSION_GROUP_VALUES = [
  'None',
  'AnonymousUsers',
  'ExchangeUsers',
  'ExchangeServers',
  'ExchangeLegacyServers',
  'Partners',
] as const;
export const AUTH_MECHANISM_VALUES = ['None', 'Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'ExternalAuthoritative'] as const;
/** Exchange values mta-policy refuses with an explanation. */
export const UNSUPPORTED_AUTH_MECHANISMS = ['Integrated', 'ExchangeServer'] as const;
export const USAGE_VALUES = ['client', 'internet', 'internal', 'partner', 'custom'] as const;
export const DIALECT_VALUES = ['exchange', 'rfc'] as const;
export const ACCEPTED_DOMAIN_TYPES = ['authoritative', 'internal_relay', 'external_relay'] as const;
export const MESSAGE_RATE_SOURCES = ['user', 'ip_address', 'all'] as const;
export const SASL_MECHANISMS = ['PLAIN', 'LOGIN'] as const;

export const RIGHT_PATTERN = anyOfWordsPattern(RIGHTS);
export const SASL_PATTERN = anyOfWordsPattern(SASL_MECHANISMS);
export const UNLIMITED_PATTERN = anyOfWordsPattern(['unlimited']);
/** RFC 3463 `class.subject.detail`, or empty. */
export const ENHANCED_CODE_PATTERN = '^(?:[245]\\.(?:0|[1-9][0-9]{0,2})\\.(?:0|[1-9][0-9]{0,2}))?$';
export const SINGLE_LINE_PATTERN = '^[^\\r\\n]*$';
/** RFC 5322 field-name characters (printable ASCII except colon). */
export const HEADER_PREFIX_PATTERN = '^[!-9;-~]+$';

const str = (description: string, extra: JsonSchema = {}): JsonSchema => ({ type: 'string', description, ...extra });
const bool = (description: string, dflt: boolean): JsonSchema => ({ type: 'boolean', description, default: dflt });
const list = (description: string, items: JsonSchema, extra: JsonSchema = {}): JsonSchema => ({
  type: 'array',
  description,
  items,
  ...extra,
});
const ref = (name: string, description: string, extra: JsonSchema = {}): JsonSchema => ({
  $ref: `#/$defs/${name}`,
  description,
  ...extra,
});
/** An integer in [min, max], or the string `unlimited` (any case). */
const limit = (description: string, min: number, max: number, dflt?: number | 'unlimited'): JsonSchema => ({
  type: ['integer', 'string'],
  description,
  minimum: min,
  maximum: max,
  pattern: UNLIMITED_PATTERN,
  ...(dflt === undefined ? {} : { default: dflt }),
  examples: typeof dflt === 'number' ? [dflt, 'unlimited'] : [5, 'unlimited'],
});

function describeReply(r: { code: number; enhanced: string; text: string; disconnect?: boolean }): string {
  const enh = r.enhanced === '' ? '' : ` ${r.enhanced}`;
  return `${r.code}${enh} ${r.text}${r.disconnect === true ? ' (then disconnect)' : ''}`;
}

const replyProperties: Record<string, JsonSchema> = {};
for (const reason of REASONS) {
  const entry = REPLY_CATALOGUE[reason];
  replyProperties[reason] = ref(
    'reply',
    `Override for reason \`${reason}\`. Default, dialect exchange: ${describeReply(entry.exchange)}; dialect rfc: ${describeReply(entry.rfc)}.`,
  );
}

const PRINCIPAL_DESCRIPTION =
  'Who the entry applies to: anonymous | authenticated | externally_secured | partner | exchange_servers | exchange_legacy_servers | user:NAME (a configured user) | group:NAME (a group some user is in). Names are case-insensitive.';

export const CONFIG_SCHEMA: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: SCHEMA_ID,
  title: 'mta-policy configuration',
  description:
    'Exchange-style SMTP receive connectors, accepted domains and identities for mta-policy. Keys follow the Exchange parameter names in snake_case.',
  type: 'object',
  additionalProperties: false,
  required: ['server', 'connectors'],
  properties: {
    server: ref('server', 'Server-wide settings (Exchange: the transport server and Set-TransportConfig).'),
    accepted_domains: list(
      'Domains this organisation accepts mail for (Exchange: Get-AcceptedDomain). Recipients in them never need the relay right.',
      { $ref: '#/$defs/acceptedDomain' },
      { default: [] },
    ),
    identities: ref('identities', 'Users and servers that can authenticate with SMTP AUTH, their addresses and groups.'),
    connectors: list(
      'Receive connectors (Exchange: Get-ReceiveConnector). A connection is handled by the enabled connector whose binding matches the local ip:port and whose remote IP ranges match the client most specifically.',
      { $ref: '#/$defs/connector' },
    ),
  },
  $defs: {
    server: {
      type: 'object',
      description: 'Server-wide settings.',
      additionalProperties: false,
      required: ['fqdn'],
      properties: {
        fqdn: str('Fully qualified host name of this server; the default connector FQDN used in the banner and the EHLO reply.', {
          minLength: 1,
          examples: ['smtp.northwind.test'],
        }),
        dialect: {
          type: 'string',
          enum: [...DIALECT_VALUES],
          default: 'exchange',
          description:
            'Reply wording: `exchange` (Exchange 2016/2019 strings) or `rfc` (RFC 5321/4954/6409 replies, Postfix wording). Connectors may override it.',
        },
        local_addresses: list(
          "This server's own IP addresses: a recipient `user@[ip]` with one of them is local, not relayed.",
          ref('ipAddress', 'One of this server\'s IP addresses.'),
          { default: [], examples: [['192.0.2.10', '2001:db8::10']] },
        ),
        domain_secure_domains: list(
          'Sender domains whose mail must arrive over mutual TLS from a server with a matching certificate (Exchange: Set-TransportConfig -TLSReceiveDomainSecureList). Used by connectors with domain_secure_enabled.',
          ref('domain', 'A partner domain.'),
          { default: [] },
        ),
        organization_header_prefixes: list(
          'Header-name prefixes only sessions with ms-Exch-Accept-Headers-Organization may carry; others have them stripped.',
          ref('headerPrefix', 'A header-name prefix (case-insensitive).'),
          { default: ['X-MS-Exchange-Organization-', 'X-MTA-Policy-'] },
        ),
        forest_header_prefixes: list(
          'Header-name prefixes only sessions with ms-Exch-Accept-Headers-Forest may carry; others have them stripped.',
          ref('headerPrefix', 'A header-name prefix (case-insensitive).'),
          { default: ['X-MS-Exchange-Forest-'] },
        ),
        replies: ref('replies', 'Server-wide reply overrides by reason, for both dialects. Connector overrides take precedence.'),
      },
    },
    acceptedDomain: {
      type: 'object',
      description: 'An accepted domain (Exchange: New-AcceptedDomain).',
      additionalProperties: false,
      required: ['domain'],
      properties: {
        domain: ref(
          'domain',
          'Domain name, or `*.domain` for all its subdomains (the wildcard only as the whole first label). Unicode names are converted to A-labels; a trailing dot is ignored.',
          { examples: ['northwind.test', '*.northwind.test'] },
        ),
        type: {
          type: 'string',
          enum: [...ACCEPTED_DOMAIN_TYPES],
          default: 'authoritative',
          description:
            'authoritative: all recipients are in this organisation; internal_relay: some recipients are elsewhere (shared namespace); external_relay: no recipients here, mail is relayed on.',
        },
      },
    },
    identities: {
      type: 'object',
      description: 'Identities that can authenticate.',
      additionalProperties: false,
      properties: {
        users: list('Users and servers that authenticate with SMTP AUTH.', { $ref: '#/$defs/user' }, { default: [] }),
        unlisted_logins: {
          enum: ['reject', 'authenticated'],
          default: 'reject',
          description:
            'A login the credential check accepts but no user lists: `reject` (default) refuses it like bad credentials, so an alias cannot dodge a user\'s deny entries; `authenticated` lets it in as an authenticated user with no groups, sending as exactly its login.',
        },
      },
    },
    user: {
      type: 'object',
      description: 'A user or server identity.',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: str('Unique name (case-insensitive); also an AUTH login name. Principal `user:NAME` refers to it.', {
          minLength: 1,
          examples: ['nancy'],
        }),
        addresses: list(
          'Email addresses of this identity; the first is the primary. Each address belongs to one identity only, and each is also an AUTH login name.',
          ref('address', 'An email address.'),
          { default: [] },
        ),
        groups: list(
          'Groups this identity is in (case-insensitive). Principal `group:NAME` refers to them; members of "Exchange Servers" authenticate as Exchange servers.',
          str('A group name.', { minLength: 1 }),
          { default: [], examples: [['Ops'], ['Exchange Servers']] },
        ),
        send_as: list(
          'Addresses this identity may send as, beyond its own (Exchange: Send-As permission).',
          ref('address', 'An email address.'),
          { default: [] },
        ),
        logins: list(
          'Extra AUTH login names (case-insensitive), e.g. DOMAIN\\user. The name and the addresses are login names already.',
          str('A login name.', { minLength: 1 }),
          { default: [] },
        ),
      },
    },
    connector: {
      type: 'object',
      description: 'A receive connector (Exchange: New-ReceiveConnector).',
      additionalProperties: false,
      required: ['name', 'usage'],
      properties: {
        name: str('Unique connector name (case-insensitive).', { minLength: 1, examples: ['Client Frontend SMTP01'] }),
        enabled: bool('Disabled connectors are validated but accept no connections.', true),
        usage: {
          type: 'string',
          enum: [...USAGE_VALUES],
          description:
            'Sets the defaults, as Exchange -Usage does. client: bindings 0.0.0.0:587 and [::]:587, all remote addresses, ExchangeUsers, Tls+BasicAuth+BasicAuthRequireTLS, 5 messages/minute per user. internet: bindings required, all remote addresses, AnonymousUsers, Tls. internal: bindings 0.0.0.0:25 and [::]:25, remote ranges required, ExchangeServers+ExchangeLegacyServers, Tls+BasicAuth+BasicAuthRequireTLS. partner: bindings and remote ranges required, Partners, Tls, Domain Secure. custom: bindings and remote ranges required, no permission groups, Tls.',
        },
        bindings: list(
          'Local ip:port pairs the connector listens on; 0.0.0.0 is every local IPv4 address and [::] every local IPv6 address.',
          ref('binding', 'A local ip:port.'),
          { minItems: 1, examples: [['0.0.0.0:25', '[::]:25']] },
        ),
        remote_ip_ranges: list(
          'Client addresses this connector serves: single IPs, CIDR blocks or a-b ranges. On a shared binding the most specific range wins; equal or partially overlapping ranges are an error.',
          ref('ipRange', 'A single IP, CIDR block or a-b range.'),
          { minItems: 1, examples: [['198.18.5.10', '198.18.7.1-198.18.7.30', '2001:db8:77::/48']] },
        ),
        permission_groups: list(
          'Permission groups (Exchange -PermissionGroups); each grants a fixed set of extended rights. [] or [None] grants nothing.',
          {
            type: 'string',
            enum: [...PERMISSION_GROUP_VALUES],
            description: 'AnonymousUsers | ExchangeUsers | ExchangeServers | ExchangeLegacyServers | Partners | None (alone).',
          },
        ),
        auth_mechanisms: list(
          'Authentication offered (Exchange -AuthMechanism). None must be alone; BasicAuthRequireTLS needs BasicAuth and Tls; ExternalAuthoritative needs ExchangeServers in permission_groups. Integrated and ExchangeServer are not supported.',
          {
            type: 'string',
            enum: [...AUTH_MECHANISM_VALUES],
            description: 'None | Tls | BasicAuth | BasicAuthRequireTLS | ExternalAuthoritative.',
          },
        ),
        require_tls: bool('Refuse MAIL FROM before STARTTLS (451 5.7.3, then disconnect). Needs Tls.', false),
        fqdn: str('Host name in the banner and the EHLO reply. Default: server.fqdn.', { minLength: 1, examples: ['relay.northwind.test'] }),
        banner: {
          type: ['string', 'null'],
          description: 'Greeting text after `220 ` (without the code). null: the dialect\'s default greeting.',
          minLength: 1,
          maxLength: 400,
          pattern: SINGLE_LINE_PATTERN,
          default: null,
        },
        dialect: {
          type: 'string',
          enum: [...DIALECT_VALUES],
          description: 'Reply wording for this connector (exchange | rfc). Default: server.dialect.',
        },
        max_message_size: ref('byteSize', 'Largest message accepted, 64KB to 2GB or unlimited. KB/MB/GB are binary (36MB = 37748736 bytes).', {
          default: '36MB',
        }),
        max_header_size: ref('byteSize', 'Largest header section accepted, 1KB to 2GB or unlimited.', { default: '256KB' }),
        max_recipients_per_message: limit('Recipients accepted per message (1 to 512000) or unlimited; more get 452 4.5.3.', 1, 512000, 200),
        max_inbound_connection: limit('Concurrent connections to this connector, or unlimited.', 1, 2147483647, 5000),
        max_inbound_connection_per_source: limit('Concurrent connections from one client IP, or unlimited.', 1, 2147483647, 20),
        message_rate_limit: limit(
          'Messages per minute per message_rate_source, or unlimited. Default: 5 for usage client, otherwise unlimited.',
          1,
          2147483647,
        ),
        message_rate_source: {
          type: 'string',
          enum: [...MESSAGE_RATE_SOURCES],
          description: 'What message_rate_limit counts per: user | ip_address | all. Default: user for usage client, otherwise ip_address.',
        },
        max_logon_failures: {
          type: 'integer',
          minimum: 0,
          maximum: 100,
          default: 3,
          description: 'Failed AUTH attempts before the session is closed; 0 never closes it.',
        },
        max_hop_count: {
          type: 'integer',
          minimum: 1,
          maximum: 500,
          default: 30,
          description: 'Most Received: headers a message may carry before it is refused as a loop (554 5.4.6).',
        },
        require_ehlo_domain: bool('Require a domain argument to EHLO/HELO (501 5.0.0 otherwise).', false),
        domain_secure_enabled: {
          type: 'boolean',
          description:
            'Domain Secure: mail from server.domain_secure_domains must come over mutual TLS. Needs Tls. Default: true when Partners is in permission_groups.',
        },
        basic_auth_mechanisms: list(
          'SASL mechanisms offered for BasicAuth (case-insensitive).',
          { type: 'string', pattern: SASL_PATTERN, description: 'PLAIN or LOGIN.', examples: [...SASL_MECHANISMS] },
          { minItems: 1, default: [...SASL_MECHANISMS] },
        ),
        extended_rights: list(
          'Explicit permission entries on this connector (Exchange: Add-ADPermission -ExtendedRights / Remove-ADPermission). A deny wins over any allow, including those from permission groups.',
          { $ref: '#/$defs/ace' },
          { default: [] },
        ),
        replies: ref('replies', 'Reply overrides by reason for this connector.'),
      },
      allOf: [
        {
          if: { type: 'object', required: ['usage'], properties: { usage: { enum: ['internet', 'partner', 'custom'] } } },
          then: { type: 'object', required: ['bindings'] },
        },
        {
          if: { type: 'object', required: ['usage'], properties: { usage: { enum: ['internal', 'partner', 'custom'] } } },
          then: { type: 'object', required: ['remote_ip_ranges'] },
        },
      ],
    },
    ace: {
      type: 'object',
      description: 'A permission entry: extended rights allowed or denied to one principal.',
      additionalProperties: false,
      required: ['principal'],
      properties: {
        principal: str(PRINCIPAL_DESCRIPTION, { minLength: 1, examples: ['anonymous', 'user:nancy', 'group:Ops'] }),
        allow: list('Extended rights granted.', { $ref: '#/$defs/right' }),
        deny: list('Extended rights denied; a deny wins.', { $ref: '#/$defs/right' }),
      },
    },
    right: {
      type: 'string',
      description: 'An extended right, spelled as in Exchange (any letter case).',
      pattern: RIGHT_PATTERN,
      examples: [...RIGHTS],
    },
    reply: {
      type: 'object',
      description: 'An SMTP reply.',
      additionalProperties: false,
      required: ['code', 'enhanced', 'text'],
      properties: {
        code: { type: 'integer', minimum: 200, maximum: 599, description: 'Reply code, 200–599.', examples: [550] },
        enhanced: str('Enhanced status code class.subject.detail whose class is the first digit of code; "" only for 2xx/3xx.', {
          pattern: ENHANCED_CODE_PATTERN,
          examples: ['5.7.1'],
        }),
        text: str('Reply text, one line, up to 400 characters; may contain {fqdn} and {client_ip}.', {
          minLength: 1,
          maxLength: 400,
          pattern: SINGLE_LINE_PATTERN,
        }),
        disconnect: bool('Close the session after sending this reply.', false),
      },
    },
    replies: {
      type: 'object',
      description: 'Reply overrides keyed by reason.',
      additionalProperties: false,
      propertyNames: { enum: [...REASONS] },
      properties: replyProperties,
    },
    domain: {
      type: 'string',
      description: 'A domain name (Unicode or A-labels).',
      minLength: 1,
      maxLength: 256,
    },
    address: {
      type: 'string',
      description: 'An email address local@domain.',
      minLength: 3,
      examples: ['nancy@northwind.test'],
    },
    ipAddress: {
      type: 'string',
      description: 'An IPv4 or IPv6 address.',
      minLength: 1,
      examples: ['192.0.2.10', '2001:db8::10'],
    },
    ipRange: {
      type: 'string',
      description: 'A single IP (192.0.2.1), a CIDR block (192.0.2.0/24, 2001:db8::/32) or a range (192.0.2.1-192.0.2.30).',
      minLength: 1,
      examples: ['192.0.2.1', '192.0.2.0/24', '192.0.2.1-192.0.2.30', '2001:db8::/32'],
    },
    binding: {
      type: 'string',
      description: 'A local ip:port: 0.0.0.0:25 (all IPv4), [::]:25 (all IPv6), 192.0.2.10:25, [2001:db8::1]:25.',
      minLength: 1,
      examples: ['0.0.0.0:25', '[::]:25', '0.0.0.0:587', '192.0.2.10:25'],
    },
    byteSize: {
      type: ['integer', 'string'],
      description: 'A size: bytes (integer), a number with B/KB/MB/GB/TB (binary multiples), or unlimited.',
      minimum: 0,
      pattern: BYTE_SIZE_PATTERN,
      examples: ['36MB', '256KB', '2GB', 'unlimited', 37748736],
    },
    headerPrefix: {
      type: 'string',
      description: 'A header-name prefix.',
      pattern: HEADER_PREFIX_PATTERN,
      examples: ['X-MS-Exchange-Organization-'],
    },
  },
};
