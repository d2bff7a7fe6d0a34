/**
 * The engine's public vocabulary: stages, the facts an adapter knows, and the decision it gets
 * back. Facts are wire-neutral and use the same snake_case names as the CLI's facts files and
 * scenario files, so one JSON shape serves adapters, `mta-policy eval` and `mta-policy test`.
 */

export const STAGES = ['connect', 'ehlo', 'auth', 'mail', 'rcpt', 'headers', 'eom'] as const;
export type Stage = (typeof STAGES)[number];

export function isStage(s: string): s is Stage {
  return (STAGES as readonly string[]).includes(s);
}

export interface ClientCertFacts {
  /** The certificate chain verified against the trusted CAs. */
  readonly verified: boolean;
  readonly subject?: string;
  readonly issuer?: string;
  /** subjectAltName DNS names (the CN is used when there are none). */
  readonly san_dns?: readonly string[];
}

export interface TlsFacts {
  readonly version?: string;
  readonly cipher?: string;
  readonly client_cert?: ClientCertFacts | null;
}

export interface AuthFacts {
  /** SASL mechanism, e.g. PLAIN or LOGIN. */
  readonly mechanism: string;
  /** The login name the client authenticated as (never the password). */
  readonly user: string;
  /** What the credential check said; defaults to success. At later stages only success is passed. */
  readonly result?: 'success' | 'failure' | 'tempfail';
}

export interface CounterFacts {
  /** Failed logons earlier in this session. */
  readonly logon_failures?: number;
  /** Concurrent connections from this client, this one included. */
  readonly connections_from_source?: number;
  /** Concurrent connections on the server, this one included. */
  readonly connections_total?: number;
  /** Messages already submitted in the last minute by this rate source (connector's message_rate_source). */
  readonly messages_last_minute?: number;
}

export type HeaderFacts =
  | Readonly<Record<string, string | readonly string[]>>
  | readonly (readonly [string, string])[];

/** Everything known about the session so far. Each stage reads what it needs. */
export interface Facts {
  /** Local endpoint: `ip:port`, `[v6]:port`, or an object. */
  readonly local: string | { readonly ip: string; readonly port: number };
  /** Client address (a bare IP, or `ip:port`), or an object. */
  readonly remote: string | { readonly ip: string; readonly port?: number };
  /** TLS state; absent or null means cleartext. */
  readonly tls?: TlsFacts | null;
  readonly helo?: string;
  readonly auth?: AuthFacts | null;
  readonly counters?: CounterFacts;
  /** Reverse-path as the client sent it, with or without angle brackets (`<>` = null sender). */
  readonly mail_from?: string;
  /** MAIL FROM parameters: SIZE, SMTPUTF8, BODY, … (keys case-insensitive). */
  readonly mail_params?: Readonly<Record<string, string | number | boolean | null>>;
  /** The recipient being decided (RCPT stage). */
  readonly rcpt_to?: string;
  /** Recipients already accepted in this transaction. */
  readonly accepted_rcpt_count?: number;
  readonly headers?: HeaderFacts;
  /** Header block size in bytes (end of headers). */
  readonly header_size?: number;
  /** Message size in bytes (end of message). */
  readonly message_size?: number;
}

export type DecisionKind = 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | 'disconnect';

export interface SmtpReply {
  readonly code: number;
  /** Enhanced status code, `c.s.d`; empty only on some 2xx/3xx replies. */
  readonly enhanced: string;
  readonly text: string;
}

export interface HeaderAction {
  readonly op: 'remove';
  /** Lower-case header name; remove every occurrence. */
  readonly name: string;
}

export interface MessageFlags {
  /** Exchange X-MS-Exchange-Organization-AuthAs analogue: Anonymous, Internal or Partner. */
  readonly auth_as: 'Anonymous' | 'Internal' | 'Partner';
  readonly bypass_anti_spam: boolean;
  readonly accept_authentication_flag: boolean;
  readonly bypass_message_size_limit: boolean;
}

export interface Advertise {
  readonly starttls: boolean;
  /** SASL mechanisms to offer now (empty: do not advertise AUTH). */
  readonly auth: readonly string[];
  /** SIZE to advertise in bytes, or null for no limit. */
  readonly size: number | null;
  readonly require_tls: boolean;
  readonly client_certificate: 'none' | 'request';
}

export interface RecipientFacts {
  readonly address: string;
  readonly domain: string;
  readonly accepted_domain_type: 'authoritative' | 'internal_relay' | 'external_relay' | 'local_literal' | null;
  readonly routed: boolean;
}

/** One decision per stage. Produced by the policy, validated by the engine. */
export interface Decision {
  readonly id: string;
  readonly stage: Stage;
  readonly decision: DecisionKind;
  /** Symbolic reason: `ok_<stage>` on success, else the failing check (`relay_denied`, …). */
  readonly reason: string;
  readonly reply: SmtpReply;
  /** The session's connector, or null when none matched. */
  readonly connector: string | null;
  readonly principals: readonly string[];
  /** Effective extended rights, Exchange spelling. */
  readonly rights: readonly string[];
  /** EHLO stage only. */
  readonly advertise?: Advertise;
  /** RCPT stage only. */
  readonly recipient?: RecipientFacts;
  /** End of headers and end of message: the header firewall's work. */
  readonly header_actions?: readonly HeaderAction[];
  readonly message_flags?: MessageFlags;
  /** Explain mode only: every failing check as [order, reason], the first one decided. */
  readonly checks?: readonly (readonly [number, string])[];
  /** Explain mode only: how the connector was chosen. */
  readonly selected_by?: { readonly binding: string; readonly range: string } | null;
  /** Set when the engine failed and this is its fail-safe tempfail. */
  readonly error?: { readonly code: string; readonly message: string };
}
