/**
 * Engine decisions → milter verdicts and end-of-message header edits (adapters/README.md,
 * "Decision kinds × stage → what each adapter does"). Pure.
 *
 * - `continue` → CONTINUE; `accept` (end of message) → ACCEPT; `discard` → DISCARD.
 * - `reject` → REPLYCODE with the decision's exact 5xx code, enhanced code and text;
 *   `tempfail` → the same with its 4xx. The reply layer refuses a code of the wrong class
 *   (reply-text.ts), which the session turns into SMFIR_TEMPFAIL: never weaker.
 * - `disconnect` with a 4xx → `421 <enhanced> <text>`, the only reply after which Postfix and
 *   Sendmail end the SMTP session (milter-v6.md §6); with a 5xx → that 5xx: the MTA keeps the
 *   connection and the handler refuses everything after it (enforce.ts).
 */
import type { Decision, MessageDecision } from '../../engine/types.js';
import { asciiLower } from '../../engine/util.js';
import type { MilterAction, Modification } from './types.js';

/** SMTP's "service not available, closing transmission channel" (RFC 5321 §4.2.3). */
export const DISCONNECT_CODE = 421;

/** The verdict for one decision. */
export function milterAction(d: Decision): MilterAction {
  const { code, enhanced, text } = d.reply;
  switch (d.decision) {
    case 'continue':
      return { kind: 'continue' };
    case 'accept':
      return { kind: 'accept' };
    case 'discard':
      return { kind: 'discard' };
    case 'reject':
      return { kind: 'reject', reply: { code, enhanced, text } };
    case 'tempfail':
      return { kind: 'tempfail', reply: { code, enhanced, text } };
    case 'disconnect':
      return code >= 500 ? { kind: 'reject', reply: { code, enhanced, text } } : { kind: 'tempfail', reply: { code: DISCONNECT_CODE, enhanced, text } };
  }
}

/**
 * The edits that apply an accepted end-of-message decision to the message as received:
 * every field named in `remove_headers` is deleted (names compared ASCII case-insensitively,
 * every occurrence: SMFIR_CHGHEADER with an empty value, the index being the 1-based
 * occurrence among fields of that name), then `add_headers` are appended in order.
 *
 * Occurrences are deleted from the last to the first: Postfix removes a field at once, so the
 * indexes of later fields of that name shift down; Sendmail only marks it, so they do not —
 * highest first is right for both (milter-v6.md §5.3). `received` is every header field name
 * the MTA sent, in order. Postfix's own `Received:` is hidden from milters but counted by its
 * CHGHEADER; no removable name is `Received`, so no index is off.
 */
export function headerEdits(d: MessageDecision, received: readonly string[]): Modification[] {
  const out: Modification[] = [];
  if (d.remove_headers.length > 0) {
    const remove = new Set(d.remove_headers.map(asciiLower));
    const byName = new Map<string, string[]>();
    for (const name of received) {
      const key = asciiLower(name);
      if (!remove.has(key)) continue;
      const list = byName.get(key);
      if (list === undefined) byName.set(key, [name]);
      else list.push(name);
    }
    for (const names of byName.values()) {
      for (let i = names.length; i >= 1; i--) out.push({ kind: 'changeHeader', index: i, name: names[i - 1] as string, value: '' });
    }
  }
  for (const h of d.add_headers) out.push({ kind: 'addHeader', name: h.name, value: h.value });
  return out;
}
