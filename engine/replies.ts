/**
 * The reply catalogue: symbolic reason × dialect → SMTP reply. The Rego decides *why*
 * (a reason); this table decides *what is said*. Admins override any entry per server or per
 * connector (`replies:` in the config).
 *
 * `disconnect: true` means the server closes the session after sending the reply.
 * Text may contain `{fqdn}` and `{client_ip}`, filled in by the engine.
 *
 * exchange: Exchange 2016/2019 on-premises strings (connector-model.md §1.13).
 * rfc:      RFC 3207 / 4954 / 5321 / 6409 replies, Postfix wording where the RFCs give none.
 */

export interface CatalogueReply {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
  readonly disconnect?: boolean;
}

interface Entry {
  readonly exchange: CatalogueReply;
  readonly rfc: CatalogueReply;
}

const same = (r: CatalogueReply): Entry => ({ exchange: r, rfc: r });

export const REPLY_CATALOGUE = {
  // --- success replies (decision continue / accept) ---------------------------------------
  ok_connect: {
    exchange: { code: 220, enhanced: '', text: '{fqdn} ESMTP MAIL Service ready' },
    rfc: { code: 220, enhanced: '', text: '{fqdn} ESMTP' },
  },
  ok_ehlo: same({ code: 250, enhanced: '', text: '{fqdn} Hello [{client_ip}]' }),
  ok_auth: same({ code: 235, enhanced: '2.7.0', text: 'Authentication successful' }),
  ok_mail: {
    exchange: { code: 250, enhanced: '2.1.0', text: 'Sender OK' },
    rfc: { code: 250, enhanced: '2.1.0', text: 'Ok' },
  },
  ok_rcpt: {
    exchange: { code: 250, enhanced: '2.1.5', text: 'Recipient OK' },
    rfc: { code: 250, enhanced: '2.1.5', text: 'Ok' },
  },
  ok_headers: same({ code: 250, enhanced: '2.0.0', text: 'Ok' }),
  ok_eom: {
    exchange: { code: 250, enhanced: '2.6.0', text: 'Queued mail for delivery' },
    rfc: { code: 250, enhanced: '2.0.0', text: 'Ok: queued' },
  },

  // --- connect ------------------------------------------------------------------------------
  no_connector: {
    exchange: { code: 554, enhanced: '5.7.1', text: 'Client host rejected: no receive connector for this address', disconnect: true },
    rfc: { code: 554, enhanced: '5.7.1', text: 'No SMTP service here', disconnect: true },
  },
  connection_limit: {
    exchange: { code: 421, enhanced: '4.3.2', text: 'The maximum number of concurrent server connections has exceeded a limit, closing transmission channel', disconnect: true },
    rfc: { code: 421, enhanced: '4.3.2', text: 'Too many connections, try again later', disconnect: true },
  },
  connection_limit_source: {
    exchange: { code: 421, enhanced: '4.3.2', text: 'The maximum number of concurrent connections has exceeded a limit, closing transmission channel', disconnect: true },
    rfc: { code: 421, enhanced: '4.7.0', text: 'Error: too many connections from {client_ip}', disconnect: true },
  },

  // --- ehlo ---------------------------------------------------------------------------------
  ehlo_domain_required: {
    exchange: { code: 501, enhanced: '5.0.0', text: 'EHLO requires domain address' },
    rfc: { code: 501, enhanced: '5.5.2', text: 'Syntax: EHLO hostname' },
  },
  ehlo_domain_invalid: {
    exchange: { code: 501, enhanced: '5.5.4', text: 'Invalid domain name' },
    rfc: { code: 501, enhanced: '5.5.2', text: 'Invalid EHLO hostname' },
  },

  // --- auth ---------------------------------------------------------------------------------
  auth_not_enabled: {
    exchange: { code: 504, enhanced: '5.7.4', text: 'Unrecognized authentication type' },
    rfc: { code: 503, enhanced: '5.5.1', text: 'Error: authentication not enabled' },
  },
  auth_mech_unavailable: {
    exchange: { code: 504, enhanced: '5.7.4', text: 'Unrecognized authentication type' },
    rfc: { code: 504, enhanced: '5.5.4', text: 'Unrecognized authentication type' },
  },
  auth_requires_tls: {
    exchange: { code: 504, enhanced: '5.7.4', text: 'Unrecognized authentication type' },
    rfc: { code: 538, enhanced: '5.7.11', text: 'Encryption required for requested authentication mechanism' },
  },
  auth_failed: {
    exchange: { code: 535, enhanced: '5.7.3', text: 'Authentication unsuccessful' },
    rfc: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  },
  auth_unknown_identity: {
    exchange: { code: 535, enhanced: '5.7.3', text: 'Authentication unsuccessful' },
    rfc: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  },
  auth_no_submit: {
    exchange: { code: 535, enhanced: '5.7.3', text: 'Authentication unsuccessful' },
    rfc: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  },
  auth_tempfail: same({ code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' }),
  auth_too_many_failures: same({
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many errors on this connection, closing transmission channel',
    disconnect: true,
  }),

  // --- mail ---------------------------------------------------------------------------------
  // Exchange sends "451 5.7.3": a 4xx reply with a permanent-class enhanced code, which RFC 3463
  // forbids and libmilter refuses. Same wording and behaviour, class-consistent code.
  require_tls: {
    exchange: { code: 451, enhanced: '4.7.3', text: 'STARTTLS is required to send mail', disconnect: true },
    rfc: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' },
  },
  rate_limit: {
    exchange: { code: 421, enhanced: '4.4.2', text: 'Message submission rate for this client has exceeded the configured limit', disconnect: true },
    rfc: { code: 450, enhanced: '4.7.1', text: 'Error: too much mail from this client, try again later' },
  },
  submit_denied_anonymous: {
    exchange: { code: 530, enhanced: '5.7.1', text: 'Client was not authenticated', disconnect: true },
    rfc: { code: 530, enhanced: '5.7.0', text: 'Authentication required' },
  },
  submit_denied: {
    exchange: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to submit to this server', disconnect: true },
    rfc: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to submit to this server' },
  },
  message_size: {
    exchange: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' },
    rfc: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed limit' },
  },
  partner_tls_required: same({ code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' }),
  partner_cert_missing: same({ code: 530, enhanced: '5.7.1', text: 'Not authenticated' }),
  partner_cert_invalid: same({ code: 454, enhanced: '4.7.5', text: 'Certificate validation failure' }),
  sender_invalid: {
    exchange: { code: 501, enhanced: '5.1.7', text: 'Invalid address' },
    rfc: { code: 501, enhanced: '5.1.7', text: 'Bad sender address syntax' },
  },
  address_not_ascii: same({ code: 553, enhanced: '5.6.7', text: 'Non-ASCII addresses require SMTPUTF8' }),

  // --- rcpt ---------------------------------------------------------------------------------
  too_many_recipients: {
    exchange: { code: 452, enhanced: '4.5.3', text: 'Too many recipients' },
    rfc: { code: 452, enhanced: '4.5.3', text: 'Error: too many recipients' },
  },
  relay_denied: {
    exchange: { code: 550, enhanced: '5.7.54', text: 'SMTP; Unable to relay recipient in non-accepted domain' },
    rfc: { code: 554, enhanced: '5.7.1', text: 'Relay access denied' },
  },
  routing_address: {
    exchange: { code: 550, enhanced: '5.7.54', text: 'SMTP; Unable to relay recipient in non-accepted domain' },
    rfc: { code: 554, enhanced: '5.7.1', text: 'Relay access denied' },
  },
  recipient_invalid: {
    exchange: { code: 501, enhanced: '5.1.3', text: 'Invalid address' },
    rfc: { code: 501, enhanced: '5.1.3', text: 'Bad recipient address syntax' },
  },

  // --- end of headers -----------------------------------------------------------------------
  send_as_denied: {
    exchange: { code: 550, enhanced: '5.7.1', text: 'Client does not have permissions to send as this sender' },
    rfc: { code: 553, enhanced: '5.7.1', text: 'Sender address rejected: not owned by user' },
  },
  send_as_denied_anonymous: {
    exchange: { code: 550, enhanced: '5.7.1', text: 'Anonymous client does not have permissions to send as this sender' },
    rfc: { code: 553, enhanced: '5.7.1', text: 'Sender address rejected: not logged in' },
  },
  header_size: {
    exchange: { code: 552, enhanced: '5.3.4', text: 'Header size exceeds fixed maximum size' },
    rfc: { code: 552, enhanced: '5.3.4', text: 'Message header size exceeds fixed limit' },
  },
  hop_count: same({ code: 554, enhanced: '5.4.6', text: 'Hop count exceeded - possible mail loop' }),

  // --- engine failures (never produced by Rego; used by the engine's fail-safe) -------------
  engine_error: same({ code: 451, enhanced: '4.3.0', text: 'Temporary policy failure, try again later' }),
  engine_error_connect: same({ code: 421, enhanced: '4.3.0', text: 'Temporary policy failure, try again later', disconnect: true }),
} as const satisfies Record<string, Entry>;

export type Reason = keyof typeof REPLY_CATALOGUE;
export const REASONS = Object.keys(REPLY_CATALOGUE) as Reason[];

export function isReason(s: string): s is Reason {
  return Object.hasOwn(REPLY_CATALOGUE, s);
}
