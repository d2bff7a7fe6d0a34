import { isReason, REPLY_CATALOGUE } from '../engine/replies.js';
import type { Decision } from '../engine/types.js';

export function explainReason(reason: string): string {
  return isReason(reason) ? REPLY_CATALOGUE[reason].why : 'a policy extension rule (package mta.ext) denied it';
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
  if ('advertise' in d) {
    const a = d.advertise;
    row(
      'advertise',
      `STARTTLS ${a.starttls ? 'yes' : 'no'}; AUTH ${a.auth.length === 0 ? 'hidden' : a.auth.join(' ')}; SIZE ${a.size ?? 'unlimited'}; client certificate ${a.client_certificate}`,
    );
  }
  if ('recipient' in d) {
    const r = d.recipient;
    row('recipient', `${r.address || '(invalid)'} — domain ${r.domain || '(none)'}: ${r.accepted_domain_type ?? 'not accepted'}${r.routed ? ', routed' : ''}`);
  }
  if ('header_actions' in d) {
    row('headers', d.remove_headers.length === 0 ? 'none removed' : `remove ${d.remove_headers.join(', ')}`);
    if (d.add_headers.length > 0) row('adds', d.add_headers.map((h) => `${h.name}: ${h.value}`).join('; '));
    const f = d.message_flags;
    row('flags', `auth_as=${f.auth_as} bypass_anti_spam=${f.bypass_anti_spam} accept_authentication_flag=${f.accept_authentication_flag} bypass_message_size_limit=${f.bypass_message_size_limit}`);
  }
  return `${lines.join('\n')}\n`;
}
