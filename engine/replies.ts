/**
 * The reply catalogue: symbolic reason × dialect → SMTP reply, and what each reason means in
 * words. The Rego decides *why* (a reason); this table decides *what is said*. Admins override
 * any entry per server or per connector (`replies:` in the config). `mta-policy eval --explain`
 * and the README's reasons table are derived from it.
 *
 * `disconnect: true` means the server closes the session after sending the reply.
 * Text may contain `{fqdn}` and `{client_ip}`, filled in by the engine.
 *
 * exchange: Exchange 2016/2019 on-premises strings (Microsoft Learn, "Receive connectors",
 *           "Message rate limits", and the replies Exchange sends, as logged by its protocol log).
 * rfc:      RFC 3207 / 4954 / 5321 / 6409 replies, Postfix wording where the RFCs give none.
 */
import type { Reply } from './reply.js';

/** A catalogue reply (the one Reply type). */
export type CatalogueReply = Reply;

interface Entry {
  /** What the reason means: the rule that decided, in words. */
  readonly why: string;
  readonly exchange: Reply;
  readonly rfc: Reply;
}

const same = (why: string, r: Reply): Entry => ({ why, exchange: r, rfc: r });

export const REPLY_CATALOGUE = {
  // --- success replies (decision continue / accept) ---------------------------------------
  ok_connect: {
    why: 'a connector accepts this client and no connection limit is exceeded',
    exchange: { code: 220, enhanced: '', text: '{fqdn} ESMTP MAIL Service ready' },
    rfc: { code: 220, enhanced: '', text: '{fqdn} ESMTP' },
  },
  ok_ehlo: same(
    'the greeting is acceptable',
    { code: 250, enhanced: '', text: '{fqdn} Hello [{client_ip}]' },
  ),
  ok_auth: same(
    'the credentials are valid and the identity holds ms-Exch-SMTP-Submit on this connector',
    { code: 235, enhanced: '2.7.0', text: 'Authentication successful' },
  ),
  ok_mail: {
    why: 'the session may submit: TLS, rate, Domain Secure, ms-Exch-SMTP-Submit and SIZE checks passed',
    exchange: { code: 250, enhanced: '2.1.0', text: 'Sender OK' },
    rfc: { code: 250, enhanced: '2.1.0', text: 'Ok' },
  },
  ok_rcpt: {
    why: 'the recipient is in an accepted domain, or the session holds ms-Exch-SMTP-Accept-Any-Recipient',
    exchange: { code: 250, enhanced: '2.1.5', text: 'Recipient OK' },
    rfc: { code: 250, enhanced: '2.1.5', text: 'Ok' },
  },
  ok_headers: same(
    'every sender (MAIL FROM and every From, Sender, Resent-From and Resent-Sender mailbox) is one the session may send as',
    { code: 250, enhanced: '2.0.0', text: 'Ok' },
  ),
  ok_eom: {
    why: 'the message is within the size limit',
    exchange: { code: 250, enhanced: '2.6.0', text: 'Queued mail for delivery' },
    rfc: { code: 250, enhanced: '2.0.0', text: 'Ok: queued' },
  },

  // --- connect ------------------------------------------------------------------------------
  no_connector: {
    why: 'no receive connector binds this local address and port for this client address',
    exchange: { code: 554, enhanced: '5.7.1', text: 'Client host rejected: no receive connector for this address', disconnect: true },
    rfc: { code: 554, enhanced: '5.7.1', text: 'No SMTP service here', disconnect: true },
  },
  connection_limit: {
    why: 'the connector already has max_inbound_connection connections',
    exchange: { code: 421, enhanced: '4.3.2', text: 'The maximum number of concurrent server connections has exceeded a limit, closing transmission channel', disconnect: true },
    rfc: { code: 421, enhanced: '4.3.2', text: 'Too many connections, try again later', disconnect: true },
  },
  connection_limit_source: {
    why: 'this client already has max_inbound_connection_per_source connections',
    exchange: { code: 421, enhanced: '4.3.2', text: 'The maximum number of concurrent connections has exceeded a limit, closing transmission channel', disconnect: true },
    rfc: { code: 421, enhanced: '4.7.0', text: 'Error: too many connections from {client_ip}', disconnect: true },
  },

  // --- ehlo ---------------------------------------------------------------------------------
  ehlo_domain_required: {
    why: 'the connector has require_ehlo_domain and the client gave no domain',
    exchange: { code: 501, enhanced: '5.0.0', text: 'EHLO requires domain address' },
    rfc: { code: 501, enhanced: '5.5.2', text: 'Syntax: EHLO hostname' },
  },
  ehlo_domain_invalid: {
    why: 'the connector has require_ehlo_domain and the EHLO domain is not a valid host name',
    exchange: { code: 501, enhanced: '5.5.4', text: 'Invalid domain name' },
    rfc: { code: 501, enhanced: '5.5.2', text: 'Invalid EHLO hostname' },
  },

  // --- auth ---------------------------------------------------------------------------------
  auth_not_enabled: {
    why: 'the connector offers no authentication (auth_mechanisms lacks BasicAuth)',
    exchange: { code: 504, enhanced: '5.7.4', text: 'Unrecognized authentication type' },
    rfc: { code: 503, enhanced: '5.5.1', text: 'Error: authentication not enabled' },
  },
  auth_mech_unavailable: {
    why: 'the SASL mechanism is not one the connector offers (basic_auth_mechanisms)',
    exchange: { code: 504, enhanced: '5.7.4', text: 'Unrecognized authentication type' },
    rfc: { code: 504, enhanced: '5.5.4', text: 'Unrecognized authentication type' },
  },
  auth_requires_tls: {
    why: 'the connector has BasicAuthRequireTLS and the session is not encrypted',
    exchange: { code: 504, enhanced: '5.7.4', text: 'Unrecognized authentication type' },
    rfc: { code: 538, enhanced: '5.7.11', text: 'Encryption required for requested authentication mechanism' },
  },
  auth_failed: {
    why: 'the credentials were not accepted',
    exchange: { code: 535, enhanced: '5.7.3', text: 'Authentication unsuccessful' },
    rfc: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  },
  auth_unknown_identity: {
    why: 'the credentials are valid but no identity lists this login, and identities.unlisted_logins is reject',
    exchange: { code: 535, enhanced: '5.7.3', text: 'Authentication unsuccessful' },
    rfc: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  },
  auth_no_submit: {
    why: 'the credentials are valid but the identity lacks ms-Exch-SMTP-Submit on this connector',
    exchange: { code: 535, enhanced: '5.7.3', text: 'Authentication unsuccessful' },
    rfc: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  },
  auth_tempfail: same(
    'the credential check failed temporarily',
    { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' },
  ),
  auth_too_many_failures: same(
    'more logon failures than max_logon_failures on this connection',
    {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many errors on this connection, closing transmission channel',
    disconnect: true,
  },
  ),

  // --- mail ---------------------------------------------------------------------------------
  // Exchange sends "451 5.7.3": a 4xx reply with a permanent-class enhanced code, which RFC 3463
  // forbids and libmilter refuses. Same wording and behaviour, class-consistent code.
  require_tls: {
    why: 'the connector has require_tls and the session is not encrypted',
    exchange: { code: 451, enhanced: '4.7.3', text: 'STARTTLS is required to send mail', disconnect: true },
    rfc: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' },
  },
  mta_auth_not_enabled: {
    why: 'the MTA authenticated the client, but this connector does not accept authentication (auth_mechanisms lacks BasicAuth)',
    exchange: { code: 550, enhanced: '5.7.1', text: 'Client authentication is not permitted on this connector' },
    rfc: { code: 550, enhanced: '5.7.1', text: 'Authentication not enabled on this service' },
  },
  mta_auth_requires_tls: {
    why: 'the MTA authenticated the client over an unencrypted connection, and the connector has BasicAuthRequireTLS',
    exchange: { code: 530, enhanced: '5.7.0', text: 'Authentication over an unencrypted connection is not permitted' },
    rfc: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command before authenticating' },
  },
  mta_auth_unknown_identity: {
    why: 'the MTA authenticated a login that no identity lists, and identities.unlisted_logins is reject',
    exchange: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to submit to this server' },
    rfc: { code: 550, enhanced: '5.7.1', text: 'Sender address rejected: unknown authenticated user' },
  },
  rate_limit: {
    why: 'the sender reached message_rate_limit messages in the last minute (no ms-Exch-Bypass-Message-Size-Limit)',
    exchange: { code: 421, enhanced: '4.4.2', text: 'Message submission rate for this client has exceeded the configured limit', disconnect: true },
    rfc: { code: 450, enhanced: '4.7.1', text: 'Error: too much mail from this client, try again later' },
  },
  submit_denied_anonymous: {
    why: 'the anonymous session lacks ms-Exch-SMTP-Submit on this connector',
    exchange: { code: 530, enhanced: '5.7.1', text: 'Client was not authenticated', disconnect: true },
    rfc: { code: 530, enhanced: '5.7.0', text: 'Authentication required' },
  },
  submit_denied: {
    why: 'the authenticated identity lacks ms-Exch-SMTP-Submit on this connector',
    exchange: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to submit to this server', disconnect: true },
    rfc: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to submit to this server' },
  },
  message_size: {
    why: 'the message is larger than max_message_size (no ms-Exch-Bypass-Message-Size-Limit)',
    exchange: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' },
    rfc: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed limit' },
  },
  partner_tls_required: same(
    'the sender domain is on domain_secure_domains and the session is not encrypted',
    { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' },
  ),
  partner_cert_missing: same(
    'the sender domain is on domain_secure_domains and the client sent no certificate',
    { code: 530, enhanced: '5.7.1', text: 'Not authenticated' },
  ),
  partner_cert_invalid: same(
    'the sender domain is on domain_secure_domains and the client certificate is unverified or names another domain',
    { code: 454, enhanced: '4.7.5', text: 'Certificate validation failure' },
  ),
  sender_invalid: {
    why: 'MAIL FROM is not a valid address',
    exchange: { code: 501, enhanced: '5.1.7', text: 'Invalid address' },
    rfc: { code: 501, enhanced: '5.1.7', text: 'Bad sender address syntax' },
  },
  address_not_ascii: same(
    'the address has non-ASCII characters and MAIL FROM did not ask for SMTPUTF8',
    { code: 553, enhanced: '5.6.7', text: 'Non-ASCII addresses require SMTPUTF8' },
  ),

  // --- rcpt ---------------------------------------------------------------------------------
  too_many_recipients: {
    why: 'the message already has max_recipients_per_message recipients (no ms-Exch-Bypass-Message-Size-Limit)',
    exchange: { code: 452, enhanced: '4.5.3', text: 'Too many recipients' },
    rfc: { code: 452, enhanced: '4.5.3', text: 'Error: too many recipients' },
  },
  relay_denied: {
    why: 'the recipient domain is not an accepted domain and the session lacks ms-Exch-SMTP-Accept-Any-Recipient',
    exchange: { code: 550, enhanced: '5.7.54', text: 'SMTP; Unable to relay recipient in non-accepted domain' },
    rfc: { code: 554, enhanced: '5.7.1', text: 'Relay access denied' },
  },
  routing_address: {
    why: 'the recipient uses routing (source route, %, !, quoted @, several @ or a foreign IP literal) and the session lacks ms-Exch-SMTP-Accept-Any-Recipient',
    exchange: { code: 550, enhanced: '5.7.54', text: 'SMTP; Unable to relay recipient in non-accepted domain' },
    rfc: { code: 554, enhanced: '5.7.1', text: 'Relay access denied' },
  },
  recipient_invalid: {
    why: 'RCPT TO is not a valid address',
    exchange: { code: 501, enhanced: '5.1.3', text: 'Invalid address' },
    rfc: { code: 501, enhanced: '5.1.3', text: 'Bad recipient address syntax' },
  },

  // --- end of headers -----------------------------------------------------------------------
  send_as_denied: {
    why: 'the identity may not send as a sender (MAIL FROM or header From): not its own or send_as address, and no Accept-Any-Sender / Accept-Authoritative-Domain-Sender right covers it',
    exchange: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to send as this sender' },
    rfc: { code: 553, enhanced: '5.7.1', text: 'Sender address rejected: not owned by user' },
  },
  send_as_denied_anonymous: {
    why: 'the anonymous session may not send as a sender (MAIL FROM or header From): inside senders need ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, outside senders ms-Exch-SMTP-Accept-Any-Sender',
    exchange: { code: 550, enhanced: '5.7.1', text: 'Anonymous client does not have permissions to send as this sender' },
    rfc: { code: 553, enhanced: '5.7.1', text: 'Sender address rejected: not logged in' },
  },
  header_invalid: {
    why: 'a header field name is not RFC 5322 text (spaces, colons, control characters), or From, Sender, Resent-From or Resent-Sender is not a clean mailbox list',
    exchange: { code: 554, enhanced: '5.6.0', text: 'Invalid message content, malformed header' },
    rfc: { code: 554, enhanced: '5.6.0', text: 'Message header is not valid' },
  },
  header_size: {
    why: 'the header is larger than max_header_size (no ms-Exch-Bypass-Message-Size-Limit)',
    exchange: { code: 552, enhanced: '5.3.4', text: 'Header size exceeds fixed maximum size' },
    rfc: { code: 552, enhanced: '5.3.4', text: 'Message header size exceeds fixed limit' },
  },
  hop_count: same(
    'the message has more Received headers than max_hop_count',
    { code: 554, enhanced: '5.4.6', text: 'Hop count exceeded - possible mail loop' },
  ),

  // --- engine failures (never produced by Rego; used by the engine's fail-safe) -------------
  engine_error: same(
    'the policy engine failed; the decision is a temporary failure so that nothing is accepted by mistake',
    { code: 451, enhanced: '4.3.0', text: 'Temporary policy failure, try again later' },
  ),
  engine_error_connect: same(
    'the policy engine failed; the connection is closed with a temporary failure',
    { code: 421, enhanced: '4.3.0', text: 'Temporary policy failure, try again later', disconnect: true },
  ),
} as const satisfies Record<string, Entry>;

export type Reason = keyof typeof REPLY_CATALOGUE;
export const REASONS = Object.keys(REPLY_CATALOGUE) as Reason[];

export function isReason(s: string): s is Reason {
  return Object.hasOwn(REPLY_CATALOGUE, s);
}
