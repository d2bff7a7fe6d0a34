/**
 * A decision → the `action=` Postfix acts on (access(5); parsed by `smtpd_check.c`
 * `check_table_result()`). Pure. The table of adapters/README.md, "policy service action":
 *
 * | decision | action |
 * |---|---|
 * | `continue` at RCPT | `OK` — the policy grants this recipient (accepted domain, or Accept-Any-Recipient); in `smtpd_relay_restrictions` it permits the relay |
 * | `continue` elsewhere, `accept` | `DUNNO` — no opinion: Postfix goes on with its own restrictions |
 * | `reject` / `tempfail` | `NNN x.y.z text`, the policy's exact reply |
 * | `disconnect` 4xx | `421 x.y.z text` — Postfix sends it and hangs up (access(5): "421 text") |
 * | `disconnect` 5xx | `NNN x.y.z text` — Postfix refuses but keeps the session (only 521 would hang up) |
 * | `discard` | `DISCARD text` — accept and drop the whole message |
 *
 * Postfix prefixes the text with `<address>: Recipient address rejected:` (or Sender, Client
 * host, Helo command) and may adjust the enhanced code's subject to the restriction's context
 * (`smtpd_dsn_fix`); the code and the policy's text are kept.
 *
 * Every refusal carries an enhanced code and text: a bare `550` would be all-numeric, which
 * access(5) takes as **OK** (the pop-before-smtp convention). An engine failure is already a
 * 4xx decision (`451 4.3.0`, at CONNECT `421 4.3.0`); anything the adapter cannot decide gets
 * {@link failureAction} — a plain 4xx, as Postfix's own `smtpd_policy_service_default_action`
 * (`451 4.3.5`), never `OK`, and deliberately not `DEFER_IF_PERMIT`: that defers only what
 * would otherwise pass, so behind it `reject_unauth_destination` would turn a relay the policy
 * grants into a permanent `554 Relay access denied` whenever the engine fails.
 */
import type { ServerConfig } from '../../engine/config/types.js';
import { REPLY_CATALOGUE } from '../../engine/replies.js';
import type { Decision, SmtpReply } from '../../engine/types.js';
import type { ProtocolState } from './attributes.js';

/** What an action does in Postfix, for log lines and tests. */
export type ActionKind = 'permit' | 'dunno' | 'reject' | 'defer' | 'disconnect' | 'discard';

export interface PolicyAction {
  readonly kind: ActionKind;
  /** The text after `action=`. */
  readonly action: string;
  /** The SMTP code for refusals. */
  readonly code?: number;
}

/** Anything a reply text may not hold on the wire: C0 controls and DEL. */
const CONTROL = /[\x00-\x1f\x7f]/g;

/** `NNN x.y.z text`, never all-numeric (see the file comment). */
function replyAction(code: number, reply: SmtpReply): string {
  const cls = String(code)[0] ?? '4';
  const enhanced = reply.enhanced.startsWith(`${cls}.`) ? reply.enhanced : `${cls}.0.0`;
  const text = reply.text.replace(CONTROL, ' ').trim();
  return `${code} ${enhanced} ${text === '' ? 'Refused by policy' : text}`;
}

/** The action for `d`, the decision that settles a request in `state`. */
export function actionFor(d: Decision, state: ProtocolState): PolicyAction {
  switch (d.decision) {
    case 'continue':
      return d.stage === 'rcpt' && state === 'RCPT' ? { kind: 'permit', action: 'OK' } : { kind: 'dunno', action: 'DUNNO' };
    case 'accept':
      return { kind: 'dunno', action: 'DUNNO' };
    case 'reject':
    case 'tempfail': {
      const four = d.reply.code >= 400 && d.reply.code < 500;
      // The engine pairs reject with 5xx and tempfail with 4xx; a mismatch is not sent as is.
      const code = d.decision === 'reject' ? (d.reply.code >= 500 && d.reply.code < 600 ? d.reply.code : 550) : four ? d.reply.code : 451;
      return { kind: d.decision === 'reject' ? 'reject' : 'defer', action: replyAction(code, d.reply), code };
    }
    case 'disconnect': {
      const code = d.reply.code >= 500 && d.reply.code < 600 ? d.reply.code : 421;
      return { kind: code === 421 ? 'disconnect' : 'reject', action: replyAction(code, d.reply), code };
    }
    case 'discard': {
      const text = d.reply.text.replace(CONTROL, ' ').trim();
      return { kind: 'discard', action: text === '' ? 'DISCARD' : `DISCARD ${text}` };
    }
  }
}

/**
 * The answer to a request the adapter could not decide (bad attributes, a failure inside the
 * adapter, a decision that took too long): the engine's failure reply (`engine_error`, the
 * server's override if any, else the dialect's), always a 4xx.
 */
export function failureAction(server: Pick<ServerConfig, 'dialect' | 'fqdn' | 'replies'>): PolicyAction {
  const r = server.replies['engine_error'] ?? REPLY_CATALOGUE.engine_error[server.dialect];
  const code = r.code >= 400 && r.code < 500 ? r.code : 451;
  const text = r.text.replaceAll('{fqdn}', server.fqdn).replaceAll('{client_ip}', 'unknown');
  return { kind: 'defer', action: replyAction(code, { ...r, text }), code };
}
