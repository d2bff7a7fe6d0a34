/**
 * Connector defaults by usage: the one table. The loader decodes these values exactly like
 * written ones (so a default is valid by construction), the JSON Schema publishes them, and
 * the README's table is rendered from here (a test keeps it current).
 *
 * Values are Exchange's New-ReceiveConnector -Usage defaults (Exchange 2016/2019), with the
 * substitutions noted; they are written as the configuration file writes them.
 */
import type { Json, JsonSchema } from './decode.js';
import type { FieldMeta } from './decode.js';
import { USAGES, type AuthMechanism, type MessageRateSource, type PermissionGroup, type Usage } from './types.js';

type Limit = number | 'unlimited';

export interface UsageDefaults {
  /** null: the usage has no default, the key is required. */
  readonly bindings: readonly string[] | null;
  readonly remote_ip_ranges: readonly string[] | null;
  readonly permission_groups: readonly PermissionGroup[];
  readonly auth_mechanisms: readonly AuthMechanism[];
  readonly max_message_size: string;
  readonly max_header_size: string;
  readonly max_recipients_per_message: Limit;
  readonly max_inbound_connection: Limit;
  readonly max_inbound_connection_per_source: Limit;
  readonly message_rate_limit: Limit;
  readonly message_rate_source: MessageRateSource;
  readonly max_logon_failures: number;
  readonly max_hop_count: number;
}
export type UsageKey = keyof UsageDefaults;

/** Every IPv4 and every IPv6 address: Exchange's default RemoteIPRanges. */
export const ALL_ADDRESSES: readonly string[] = ['0.0.0.0-255.255.255.255', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'];

const COMMON = {
  max_message_size: '36MB',
  max_header_size: '256KB',
  max_recipients_per_message: 200,
  max_inbound_connection: 5000,
  max_inbound_connection_per_source: 20,
  message_rate_limit: 'unlimited',
  message_rate_source: 'ip_address',
  max_logon_failures: 3,
  max_hop_count: 30,
} as const satisfies Partial<UsageDefaults>;

const AUTH_SUBMISSION: readonly AuthMechanism[] = ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'];

// Key order here is the README table's row order.
export const USAGE_DEFAULTS: Readonly<Record<Usage, UsageDefaults>> = {
  client: {
    bindings: ['0.0.0.0:587', '[::]:587'],
    remote_ip_ranges: ALL_ADDRESSES,
    permission_groups: ['ExchangeUsers'],
    auth_mechanisms: AUTH_SUBMISSION,
    ...COMMON,
    message_rate_limit: 5,
    message_rate_source: 'user',
  },
  internet: { bindings: null, remote_ip_ranges: ALL_ADDRESSES, permission_groups: ['AnonymousUsers'], auth_mechanisms: ['Tls'], ...COMMON },
  internal: {
    bindings: ['0.0.0.0:25', '[::]:25'],
    remote_ip_ranges: null,
    permission_groups: ['ExchangeServers', 'ExchangeLegacyServers'],
    auth_mechanisms: AUTH_SUBMISSION,
    ...COMMON,
  },
  partner: { bindings: null, remote_ip_ranges: null, permission_groups: ['Partners'], auth_mechanisms: ['Tls'], ...COMMON },
  custom: { bindings: null, remote_ip_ranges: null, permission_groups: [], auth_mechanisms: ['Tls'], ...COMMON },
};

/** Where mta-policy's default differs from Exchange's, and why. */
const NOTES: Partial<Record<Usage, Partial<Record<UsageKey, string>>>> = {
  client: { auth_mechanisms: 'Exchange adds Integrated, which mta-policy does not support' },
  internal: { auth_mechanisms: 'Exchange: Tls, ExchangeServer' },
};

export const USAGE_KEYS = Object.keys(USAGE_DEFAULTS.client) as UsageKey[];

const valuesOf = (key: UsageKey): Json[] => USAGES.map((u) => USAGE_DEFAULTS[u][key] as Json);
const uniform = (key: UsageKey): boolean => valuesOf(key).every((v) => JSON.stringify(v) === JSON.stringify(valuesOf(key)[0]));

/** A default for prose: `required`, `all addresses`, `none`, or the values (each in backticks when `quote`). */
function plain(key: UsageKey, v: Json, quote = false): string {
  const q = (x: Json): string => (quote ? `\`${String(x)}\`` : String(x));
  if (v === null) return 'required';
  if (key === 'remote_ip_ranges' && JSON.stringify(v) === JSON.stringify(ALL_ADDRESSES)) return 'all addresses';
  if (Array.isArray(v)) return v.length === 0 ? 'none' : v.map(q).join(', ');
  return q(v);
}

/**
 * Schema annotations for a connector key the table sets: its `default` when every usage
 * agrees, otherwise the defaults by usage in the description.
 */
export function usageFieldMeta(key: UsageKey, description: string, examples?: readonly Json[]): FieldMeta {
  const ex = examples === undefined ? {} : { examples };
  if (uniform(key)) return { description, schema: { default: valuesOf(key)[0] ?? null }, ...ex };
  const byUsage = USAGES.map((u) => `${u}: ${plain(key, USAGE_DEFAULTS[u][key] as Json)}`).join('; ');
  return { description: `${description} Default by usage: ${byUsage}.`, ...ex };
}

/** The `usage` key's description: what each usage sets. */
export function usageDescription(): string {
  const varying = USAGE_KEYS.filter((k) => !uniform(k));
  const per = USAGES.map((u) => `${u}: ${varying.map((k) => `${k} ${plain(k, USAGE_DEFAULTS[u][k] as Json)}`).join('; ')}`);
  return `Sets the defaults, as Exchange -Usage does. ${per.join('. ')}.`;
}

/** JSON Schema conditions: keys a usage has no default for are required with it. */
export function usageRequirements(): JsonSchema {
  const conditions: JsonSchema[] = [];
  for (const key of USAGE_KEYS) {
    const without = USAGES.filter((u) => USAGE_DEFAULTS[u][key] === null);
    if (without.length === 0) continue;
    conditions.push({
      if: { type: 'object', required: ['usage'], properties: { usage: { enum: without } } },
      then: { type: 'object', required: [key] },
    });
  }
  return { allOf: conditions };
}

function cell(key: UsageKey, usage: Usage): string {
  const note = NOTES[usage]?.[key];
  return `${plain(key, USAGE_DEFAULTS[usage][key] as Json, true)}${note === undefined ? '' : ` (${note})`}`;
}

/** The README's "defaults by usage" table (Markdown, one row per key, a final newline). */
export function renderUsageDefaultsTable(): string {
  const rows = [`| key | ${USAGES.map((u) => `\`${u}\``).join(' | ')} |`, `|---|${USAGES.map(() => '---|').join('')}`];
  for (const key of USAGE_KEYS) rows.push(`| \`${key}\` | ${USAGES.map((u) => cell(key, u)).join(' | ')} |`);
  return `${rows.join('\n')}\n`;
}

/** The markers around the generated table in README.md. */
export const USAGE_TABLE_MARKERS = ['<!-- generated:usage-defaults -->', '<!-- /generated -->'] as const;
