/**
 * The engine's public vocabulary: stages, the facts an adapter knows, and the decision it gets
 * back. Facts are wire-neutral and use the same snake_case names as the CLI's facts files and
 * scenario files, so one JSON shape serves adapters, `mta-policy eval` and `mta-policy test`.
 *
 * `FactsFor<S>` and `DecisionFor<S>` type each stage: a caller that forgets a fact the stage
 * needs fails to compile. Facts that are wrong at run time (bad JSON from a file, a bad macro)
 * still become a tempfail decision, never an exception and never an accept.
 */
import type { Reply } from './reply.js';

export type { Reply } from './reply.js';

export const STAGES = ['connect', 'ehlo', 'auth', 'mail', 'rcpt', 'headers', 'eom'] as const;
export type Stage = (typeof STAGES)[number];

export function isStage(s: string): s is Stage {
  return (STAGES as readonly string[]).includes(s);
}

/**
 * What a decision tells the adapter to do. `continue`: this stage passes; `accept`: end of
 * message, the message is accepted; `reject`: refuse with the 5xx reply; `tempfail`: refuse
 * with the 4xx reply; `discard`: accept and drop the message; `disconnect`: send the reply,
 * then close the connection.
 */
export const DECISION_KINDS = ['continue', 'accept', 'reject', 'tempfail', 'discard', 'disconnect'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];

/** What each decision kind tells the adapter (the README's table is rendered from this). */
export const DECISION_KIND_MEANING: Readonly<Record<DecisionKind, string>> = {
  continue: 'this stage passes (CONNECT to end of headers)',
  accept: 'end of message: the message is accepted (apply the header actions, hand it on)',
  reject: 'refuse with the 5xx reply',
  tempfail: 'refuse with the 4xx reply',
  discard: 'accept and drop the message (MAIL FROM and later)',
  disconnect: 'send the reply, then close the connection',
};

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
  /**
   * The MTA (milter, Postfix policy service) ran AUTH, not mta-policy: the connector must allow
   * authentication (BasicAuth) and, with BasicAuthRequireTLS, it must have happened over TLS;
   * the mechanism list is the MTA's business.
   */
  readonly by_mta?: boolean;
}

export interface CounterFacts {
  /** Failed logons earlier in this session. */
  readonly logon_failures?: number;
  /** Concurrent connections from this client on this connector, this one included. */
  readonly connections_from_source?: number;
  /** Concurrent connections on this connector, this one included. */
  readonly connections_total?: number;
  /** Messages already accepted in the last minute from this rate source (connector's message_rate_source). */
  readonly messages_last_minute?: number;
}

/** Header fields in message order: `[name, value]` pairs, or an object (a list value = several fields). */
export type HeaderFacts =
  | Readonly<Record<string, string | readonly string[]>>
  | readonly (readonly [string, string])[];

export type Endpoint = string | { readonly ip: string; readonly port: number };

/** What is known at CONNECT. */
export interface ConnectFacts {
  /** Local endpoint: `ip:port`, `[v6]:port`, or an object. The port is required. */
  readonly local: Endpoint;
  /** Client address (a bare IP, or `ip:port`), or an object. */
  readonly remote: string | { readonly ip: string; readonly port?: number };
  /** TLS state; absent or null means cleartext. */
  readonly tls?: TlsFacts | null;
  readonly counters?: CounterFacts;
}

export interface EhloFacts extends ConnectFacts {
  /** The EHLO/HELO argument ('' for none). */
  readonly helo?: string;
}

export interface AuthStageFacts extends EhloFacts {
  readonly auth: AuthFacts;
}

export interface MailFacts extends EhloFacts {
  /** The session's successful authentication, if any. */
  readonly auth?: AuthFacts | null;
  /** Reverse-path as the client sent it, with or without angle brackets (`<>` = null sender). */
  readonly mail_from: string;
  /** MAIL FROM parameters: SIZE, SMTPUTF8, BODY, … (keys case-insensitive; a key given twice is an error). */
  readonly mail_params?: Readonly<Record<string, string | number | boolean | null>>;
}

export interface RcptFacts extends MailFacts {
  /** The recipient being decided. */
  readonly rcpt_to: string;
  /** Recipients already accepted in this transaction (default 0). */
  readonly accepted_rcpt_count?: number;
}

export interface HeadersFacts extends MailFacts {
  readonly accepted_rcpt_count?: number;
  readonly headers: HeaderFacts;
  /** Header block size in bytes; derived from `headers` when absent, and never smaller than them. */
  readonly header_size?: number;
}

export interface EomFacts extends HeadersFacts {
  /** Message size in bytes (header and body). */
  readonly message_size: number;
}

/** The facts each stage needs. */
export interface StageFacts {
  connect: ConnectFacts;
  ehlo: EhloFacts;
  auth: AuthStageFacts;
  mail: MailFacts;
  rcpt: RcptFacts;
  headers: HeadersFacts;
  eom: EomFacts;
}
export type FactsFor<S extends Stage> = StageFacts[S];

/** Everything known about the session so far (any stage's facts); each stage reads what it needs. */
export type Facts = ConnectFacts & Partial<Omit<EomFacts, keyof ConnectFacts>> & { readonly rcpt_to?: string; readonly auth?: AuthFacts | null };

/** An SMTP reply: code, enhanced status code (`c.s.d`, empty only for some 2xx/3xx) and one line of text. */
export type SmtpReply = Omit<Reply, 'disconnect'>;

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

export interface AddHeader {
  readonly name: string;
  readonly value: string;
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

/** What every decision carries. */
export interface DecisionBase<S extends Stage = Stage> {
  readonly id: string;
  readonly stage: S;
  readonly decision: DecisionKind;
  /** Symbolic reason: `ok_<stage>` on success, else the failing check (`relay_denied`, …). */
  readonly reason: string;
  readonly reply: SmtpReply;
  /** The session's connector, or null when none matched (or the engine failed before it knew). */
  readonly connector: string | null;
  readonly principals: readonly string[];
  /** Effective extended rights, Exchange spelling, sorted. */
  readonly rights: readonly string[];
  /** Explain mode only: every failing check as [order, reason], the first one decided. */
  readonly checks?: readonly (readonly [number, string])[];
  /** Explain mode only: how the connector was chosen. */
  readonly selected_by?: { readonly binding: string; readonly range: string } | null;
  /** Set when the engine failed and this is its fail-safe tempfail. */
  readonly error?: { readonly code: string; readonly message: string };
}

export interface EhloDecision extends DecisionBase<'ehlo'> {
  /** What to advertise (nothing on a fail-safe tempfail). */
  readonly advertise: Advertise;
}

export interface AuthDecision extends DecisionBase<'auth'> {
  /** This attempt counts as a failed logon (bad credentials, unknown identity, no Submit right). */
  readonly logon_failure: boolean;
}

export interface RcptDecision extends DecisionBase<'rcpt'> {
  readonly recipient: RecipientFacts;
}

/**
 * End of headers and end of message. Adapters apply the header actions of the **end-of-message
 * decision, and only when it is `accept`**: first remove every field named in `remove_headers`
 * (names compared case-insensitively, every occurrence), then add `add_headers` in order. The
 * end-of-headers decision carries the same lists computed from the same header block, so an
 * adapter may show them early, but never applies them.
 */
export interface MessageDecision<S extends 'headers' | 'eom' = 'headers' | 'eom'> extends DecisionBase<S> {
  /** The header firewall's removals as the policy states them. */
  readonly header_actions: readonly HeaderAction[];
  readonly message_flags: MessageFlags;
  /** Lower-case names of fields present in the message that must go: the firewall's and every inbound copy of the flag headers. */
  readonly remove_headers: readonly string[];
  /** The trusted flag headers (engine/headers.ts), to add after the removals. */
  readonly add_headers: readonly AddHeader[];
}

export interface StageDecisions {
  connect: DecisionBase<'connect'>;
  ehlo: EhloDecision;
  auth: AuthDecision;
  mail: DecisionBase<'mail'>;
  rcpt: RcptDecision;
  headers: MessageDecision<'headers'>;
  eom: MessageDecision<'eom'>;
}
export type DecisionFor<S extends Stage> = StageDecisions[S];

/** Any stage's decision. */
export type Decision = StageDecisions[Stage];
