/**
 * Handler verdicts and modifications → wire replies, validated against the stage and the
 * negotiated capabilities. Pure. Anything invalid is a `MilterUsageError`, which the session
 * turns into SMFIR_TEMPFAIL — a verdict is never weakened into accept or continue.
 */
import {
  MILTER_CHUNK_SIZE,
  SMFIF_ADDHDRS,
  SMFIF_ADDRCPT,
  SMFIF_ADDRCPT_PAR,
  SMFIF_CHGBODY,
  SMFIF_CHGFROM,
  SMFIF_CHGHDRS,
  SMFIF_DELRCPT,
  SMFIF_QUARANTINE,
} from './constants.js';
import { MilterUsageError } from './errors.js';
import { actionNames, type MilterEvent, type Negotiated } from './negotiate.js';
import { formatReplyText } from './reply-text.js';
import { replyFrame, type MilterReply } from './replies.js';
import type { MilterAction, MilterActionKind, Modification } from './types.js';

/** Where a verdict is given: an event, or end of message. */
export type VerdictStage = MilterEvent | 'eom';

const CONNECTION: readonly MilterActionKind[] = ['continue', 'accept', 'reject', 'tempfail'];
const MESSAGE: readonly MilterActionKind[] = [...CONNECTION, 'discard'];

/**
 * Verdicts each stage allows. DISCARD at CONNECT/HELO is ignored by Postfix with a warning;
 * SKIP means something portable only for body chunks (Sendmail); QUARANTINE is accepted by
 * Sendmail only after end of body.
 */
export const ALLOWED_ACTIONS: Readonly<Record<VerdictStage, readonly MilterActionKind[]>> = {
  connect: CONNECTION,
  helo: CONNECTION,
  mail: MESSAGE,
  rcpt: MESSAGE,
  data: MESSAGE,
  header: MESSAGE,
  eoh: MESSAGE,
  body: [...MESSAGE, 'skip'],
  eom: [...MESSAGE, 'quarantine'],
  unknown: ['continue', 'reject', 'tempfail'],
};

function refuse(why: string): MilterUsageError {
  return new MilterUsageError('MILTER_ACTION_INVALID', why);
}

function checked(reply: MilterReply): MilterReply {
  replyFrame(reply); // validates every field; throws MilterUsageError
  return reply;
}

/** The wire replies for `action` at `stage` (one verdict, preceded by a quarantine at EOM). */
export function actionReplies(stage: VerdictStage, action: MilterAction, n: Negotiated): MilterReply[] {
  if (!ALLOWED_ACTIONS[stage].includes(action.kind)) throw refuse(`verdict ${action.kind} is not allowed at ${stage}`);
  switch (action.kind) {
    case 'continue':
    case 'accept':
    case 'discard':
      return [{ kind: action.kind }];
    case 'skip':
      return [{ kind: n.skip ? 'skip' : 'continue' }];
    case 'reject':
    case 'tempfail':
      if (action.reply === undefined) return [{ kind: action.kind }];
      return [checked({ kind: 'replyCode', text: formatReplyText(action.reply, action.kind) })];
    case 'quarantine':
      if ((n.actions & SMFIF_QUARANTINE) === 0) throw refuse('quarantine needs SMFIF_QUARANTINE, which was not negotiated');
      return [checked({ kind: 'quarantine', reason: action.reason }), { kind: 'continue' }];
  }
}

function need(n: Negotiated, bit: number, what: string): void {
  if ((n.actions & bit) === 0) {
    throw new MilterUsageError('MILTER_MODIFICATION_INVALID', `${what} needs ${actionNames(bit).join('')}, which was not negotiated`);
  }
}

/** The value as the MTA must receive it: with SMFIP_HDR_LEADSPC it adds no space, so we do. */
function wireValue(value: string, n: Negotiated): string {
  return n.headerLeadingSpace && value !== '' ? ` ${value}` : value;
}

/** The wire replies for `mods`, in order; a body replacement becomes contiguous chunks. */
export function modificationReplies(mods: readonly Modification[], n: Negotiated): MilterReply[] {
  const out: MilterReply[] = [];
  let bodies = 0;
  for (const m of mods) {
    switch (m.kind) {
      case 'addHeader':
        need(n, SMFIF_ADDHDRS, 'addHeader');
        out.push(checked({ kind: 'addHeader', name: m.name, value: wireValue(m.value, n) }));
        break;
      case 'insertHeader':
        need(n, SMFIF_ADDHDRS, 'insertHeader');
        out.push(checked({ kind: 'insHeader', index: m.index, name: m.name, value: wireValue(m.value, n) }));
        break;
      case 'changeHeader':
        need(n, SMFIF_CHGHDRS, 'changeHeader');
        out.push(checked({ kind: 'chgHeader', index: m.index, name: m.name, value: wireValue(m.value, n) }));
        break;
      case 'addRecipient':
        if (m.args === undefined) {
          need(n, SMFIF_ADDRCPT, 'addRecipient');
          out.push(checked({ kind: 'addRcpt', rcpt: m.rcpt }));
        } else {
          need(n, SMFIF_ADDRCPT_PAR, 'addRecipient with ESMTP arguments');
          out.push(checked({ kind: 'addRcptPar', rcpt: m.rcpt, args: m.args }));
        }
        break;
      case 'deleteRecipient':
        need(n, SMFIF_DELRCPT, 'deleteRecipient');
        out.push(checked({ kind: 'delRcpt', rcpt: m.rcpt }));
        break;
      case 'changeSender':
        need(n, SMFIF_CHGFROM, 'changeSender');
        out.push(checked(m.args === undefined ? { kind: 'chgFrom', sender: m.sender } : { kind: 'chgFrom', sender: m.sender, args: m.args }));
        break;
      case 'replaceBody':
        need(n, SMFIF_CHGBODY, 'replaceBody');
        // Postfix refuses REPLBODY packets interleaved with other requests (milter8.c).
        if (++bodies > 1) throw new MilterUsageError('MILTER_MODIFICATION_INVALID', 'at most one replaceBody per message');
        for (let off = 0; off < m.body.length; off += MILTER_CHUNK_SIZE) {
          out.push({ kind: 'replBody', chunk: m.body.subarray(off, off + MILTER_CHUNK_SIZE) });
        }
        if (m.body.length === 0) out.push({ kind: 'replBody', chunk: Buffer.alloc(0) });
        break;
      case 'progress':
        out.push({ kind: 'progress' });
        break;
    }
  }
  return out;
}
