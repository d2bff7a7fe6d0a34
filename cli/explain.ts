import type { Decision } from '../engine/types.js';

/** What each reason means, in words: the rule that decided. */
const WHY: Record<string, string> = {
  ok_connect: 'a connector accepts this client and no connection limit is exceeded',
  ok_ehlo: 'the greeting is acceptable',
  ok_auth: 'the credentials are valid and the identity holds ms-Exch-SMTP-Submit on this connector',
  ok_mail: 'the session may submit: TLS, rate, Domain Secure, ms-Exch-SMTP-Submit and SIZE checks passed',
  ok_rcpt: 'the recipient is in an accepted domain, or the session holds ms-Exch-SMTP-Accept-Any-Recipient',
  ok_headers: 'every sender (MAIL FROM and header From) is one the session may send as',
  ok_eom: 'the message is within the size limit',
  no_connector: 'no receive connector binds this local address and port for this client address',
  connection_limit: 'the connector already has max_inbound_connection connections',
  connection_limit_source: 'this client already has max_inbound_connection_per_source connections',
  ehlo_domain_required: 'the connector has require_ehlo_domain and the client gave no domain',
  ehlo_domain_invalid: 'the connector has require_ehlo_domain and the EHLO domain is not a valid host name',
  auth_not_enabled: 'the connector offers no authentication (auth_mechanisms lacks BasicAuth)',
  auth_mech_unavailable: 'the SASL mechanism is not one the connector offers (basic_auth_mechanisms)',
  auth_requires_tls: 'the connector has BasicAuthRequireTLS and the session is not encrypted',
  auth_failed: 'the credentials were not accepted',
  auth_unknown_identity:
    'the credentials are valid but no identity lists this login, and identities.unlisted_logins is reject',
  auth_no_submit: 'the credentials are valid but the identity lacks ms-Exch-SMTP-Submit on this connector',
  auth_tempfail: 'the credential check failed temporarily',
  auth_too_many_failures: 'more logon failures than max_logon_failures on this connection',
  require_tls: 'the connector has require_tls and the session is not encrypted',
  rate_limit: 'the sender reached message_rate_limit messages in the last minute (no ms-Exch-Bypass-Message-Size-Limit)',
  submit_denied_anonymous: 'the anonymous session lacks ms-Exch-SMTP-Submit on this connector',
  submit_denied: 'the authenticated identity lacks ms-Exch-SMTP-Submit on this connector',
  message_size: 'the message is larger than max_message_size (no ms-Exch-Bypass-Message-Size-Limit)',
  partner_tls_required: 'the sender domain is on domain_secure_domains and the session is not encrypted',
  partner_cert_missing: 'the sender domain is on domain_secure_domains and the client sent no certificate',
  partner_cert_invalid: 'the sender domain is on domain_secure_domains and the client certificate is unverified or names another domain',
  sender_invalid: 'MAIL FROM is not a valid address',
  address_not_ascii: 'the address has non-ASCII characters and MAIL FROM did not ask for SMTPUTF8',
  too_many_recipients: 'the message already has max_recipients_per_message recipients (no ms-Exch-Bypass-Message-Size-Limit)',
  relay_denied:
    'the recipient domain is not an accepted domain and the session lacks ms-Exch-SMTP-Accept-Any-Recipient',
  routing_address:
    'the recipient uses routing (source route, %, !, quoted @, several @ or a foreign IP literal) and the session lacks ms-Exch-SMTP-Accept-Any-Recipient',
  recipient_invalid: 'RCPT TO is not a valid address',
  send_as_denied:
    'the identity may not send as a sender (MAIL FROM or header From): not its own or send_as address, and no Accept-Any-Sender / Accept-Authoritative-Domain-Sender right covers it',
  send_as_denied_anonymous:
    'the anonymous session may not send as a sender (MAIL FROM or header From): inside senders need ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, outside senders ms-Exch-SMTP-Accept-Any-Sender',
  header_size: 'the header is larger than max_header_size (no ms-Exch-Bypass-Message-Size-Limit)',
  hop_count: 'the message has more Received headers than max_hop_count',
  engine_error: 'the policy engine failed; the decision is a temporary failure so that nothing is accepted by mistake',
  engine_error_connect: 'the policy engine failed; the connection is closed with a temporary failure',
};

export function explainReason(reason: string): string {
  return WHY[reason] ?? 'a policy extension rule (package mta.ext) denied it';
}

export function formatReply(d: Decision): string {
  return [d.reply.code, d.reply.enhanced, d.reply.text].filter((p) => p !== '').join(' ');
}

/** A decision in words: connector, principals, rights, and the rule that decided. */
export function explainDecision(d: Decision): string {
  const lines: string[] = [];
  const row = (label: string, value: string): void => {
    lines.push(`${`${label}:`.padEnd(12)}${value}`);
  };
  row('stage', d.stage);
  row('decision', `${d.decision} — ${formatReply(d)}`);
  row('rule', `${d.reason}: ${explainReason(d.reason)}`);
  if (d.error !== undefined) row('error', `${d.error.code}: ${d.error.message}`);
  if (d.connector === null) {
    row('connector', 'none matched');
  } else {
    const by = d.selected_by;
    row('connector', by === undefined || by === null ? d.connector : `${d.connector} (binding ${by.binding}, remote range ${by.range})`);
  }
  row('principals', d.principals.length === 0 ? '(none)' : d.principals.join(', '));
  row('rights', d.rights.length === 0 ? '(none)' : d.rights.join(', '));
  if (d.checks !== undefined && d.checks.length > 0) {
    row('checks', d.checks.map(([order, reason]) => `${reason} (#${order})`).join(', ') + ' — the first one decides');
  }
  if (d.advertise !== undefined) {
    const a = d.advertise;
    row(
      'advertise',
      `STARTTLS ${a.starttls ? 'yes' : 'no'}; AUTH ${a.auth.length === 0 ? 'hidden' : a.auth.join(' ')}; SIZE ${a.size ?? 'unlimited'}; client certificate ${a.client_certificate}`,
    );
  }
  if (d.recipient !== undefined) {
    const r = d.recipient;
    row('recipient', `${r.address || '(invalid)'} — domain ${r.domain || '(none)'}: ${r.accepted_domain_type ?? 'not accepted'}${r.routed ? ', routed' : ''}`);
  }
  if (d.header_actions !== undefined) {
    row('headers', d.header_actions.length === 0 ? 'none removed' : `remove ${d.header_actions.map((h) => h.name).join(', ')}`);
  }
  if (d.message_flags !== undefined) {
    const f = d.message_flags;
    row('flags', `auth_as=${f.auth_as} bypass_anti_spam=${f.bypass_anti_spam} accept_authentication_flag=${f.accept_authentication_flag} bypass_message_size_limit=${f.bypass_message_size_limit}`);
  }
  return `${lines.join('\n')}\n`;
}
