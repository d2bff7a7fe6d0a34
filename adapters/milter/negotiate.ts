/**
 * SMFIC_OPTNEG, pure: the MTA's offer × what the handler needs → the answer and the resulting
 * "who sends what, who replies to what" table for the session (adapters/spec/milter-v6.md §3).
 *
 * Rules (libmilter engine.c `st_optionneg`, Postfix milter8.c, Sendmail milter.c):
 * - We speak version 6 only; an offer below that is refused (Postfix `milter_protocol < 6`
 *   lacks DATA/EOH macros, NR flags and macro lists). We answer `min(6, offered)`.
 * - Every action and protocol bit we answer is a subset of the offer: Postfix and Sendmail
 *   both drop the filter on an action superset, Sendmail also on a protocol superset.
 * - A required action the MTA lacks is a negotiation failure (fail closed), as libmilter's
 *   "does not fulfill action requirements".
 * - NO* bits switch off events the handler does not want, NR_* bits stop replies to events the
 *   handler never refuses — each only where offered; otherwise the session fakes them
 *   (suppresses the call / sends CONTINUE itself), as libmilter does.
 * - Macro lists (SMFIF_SETSYMLIST) are sent only when offered; they override the MTA's
 *   configured list for that stage.
 * - SMFIP_HDR_LEADSPC, when negotiated, makes header values arrive with their leading
 *   whitespace and makes the MTA add none to values we send; the session hides the difference.
 * - Sendmail's SMFIP_MDS_* bits are echoed when our frame limit allows that size; Sendmail
 *   otherwise falls back to 64 KiB packets.
 */
import {
  MILTER_MDS_1M,
  MILTER_MDS_256K,
  MILTER_MDS_64K,
  SMFIF_ADDHDRS,
  SMFIF_ADDRCPT,
  SMFIF_ADDRCPT_PAR,
  SMFIF_CHGBODY,
  SMFIF_CHGFROM,
  SMFIF_CHGHDRS,
  SMFIF_DELRCPT,
  SMFIF_QUARANTINE,
  SMFIF_SETSYMLIST,
  SMFIM_CONNECT,
  SMFIM_DATA,
  SMFIM_ENVFROM,
  SMFIM_ENVRCPT,
  SMFIM_EOH,
  SMFIM_EOM,
  SMFIM_HELO,
  SMFIP_HDR_LEADSPC,
  SMFIP_MDS_1M,
  SMFIP_MDS_256K,
  SMFIP_NOBODY,
  SMFIP_NOCONNECT,
  SMFIP_NODATA,
  SMFIP_NOEOH,
  SMFIP_NOHDRS,
  SMFIP_NOHELO,
  SMFIP_NOMAIL,
  SMFIP_NORCPT,
  SMFIP_NOUNKNOWN,
  SMFIP_NR_BODY,
  SMFIP_NR_CONN,
  SMFIP_NR_DATA,
  SMFIP_NR_EOH,
  SMFIP_NR_HDR,
  SMFIP_NR_HELO,
  SMFIP_NR_MAIL,
  SMFIP_NR_RCPT,
  SMFIP_NR_UNKN,
  SMFIP_RCPT_REJ,
  SMFIP_SKIP,
  SMFI_PROT_VERSION,
  SMFI_V1_ACTS,
  SMFI_V1_PROT,
} from './constants.js';
import type { OptNeg } from './commands.js';
import { DEFAULT_MAX_FRAME_LENGTH } from './codec.js';
import { MilterProtocolError, MilterUsageError } from './errors.js';
import type { MilterReply } from './replies.js';

/** The per-command events a handler can see (everything but OPTNEG, MACRO, ABORT, QUIT*). */
export type MilterEvent = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'unknown';

/** Every event, in SMTP order. */
export const MILTER_EVENTS: readonly MilterEvent[] = ['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body', 'unknown'];

/** Stages a macro list can be requested for (SMFIM_*). */
export type MacroStage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'eoh' | 'eom';

/** SMFIM_* number of each macro stage. */
export const MACRO_STAGE_CODES: Readonly<Record<MacroStage, number>> = {
  connect: SMFIM_CONNECT,
  helo: SMFIM_HELO,
  mail: SMFIM_ENVFROM,
  rcpt: SMFIM_ENVRCPT,
  data: SMFIM_DATA,
  eoh: SMFIM_EOH,
  eom: SMFIM_EOM,
};

/** "Don't send" (NO*) and "no reply" (NR_*) bit of each event. */
export const EVENT_BITS: Readonly<Record<MilterEvent, { readonly no: number; readonly nr: number }>> = {
  connect: { no: SMFIP_NOCONNECT, nr: SMFIP_NR_CONN },
  helo: { no: SMFIP_NOHELO, nr: SMFIP_NR_HELO },
  mail: { no: SMFIP_NOMAIL, nr: SMFIP_NR_MAIL },
  rcpt: { no: SMFIP_NORCPT, nr: SMFIP_NR_RCPT },
  data: { no: SMFIP_NODATA, nr: SMFIP_NR_DATA },
  header: { no: SMFIP_NOHDRS, nr: SMFIP_NR_HDR },
  eoh: { no: SMFIP_NOEOH, nr: SMFIP_NR_EOH },
  body: { no: SMFIP_NOBODY, nr: SMFIP_NR_BODY },
  unknown: { no: SMFIP_NOUNKNOWN, nr: SMFIP_NR_UNKN },
};

/** What the handler needs from the MTA. Everything is optional; the default sees every event. */
export interface MilterNeeds {
  /** SMFIF_* actions that must be available; negotiation fails (fail closed) without them. */
  readonly requiredActions?: number;
  /** SMFIF_* actions used when the MTA offers them. */
  readonly optionalActions?: number;
  /** Events the handler wants to see. Default: all. Others are switched off (NO*) where possible. */
  readonly events?: readonly MilterEvent[];
  /**
   * Events the handler never answers with anything but continue: negotiated as NR_* where
   * offered. Over TCP this can cost Postfix a delayed-ACK stall per message (milter-v6.md §3),
   * so it is opt-in. Default: none.
   */
  readonly noReply?: readonly MilterEvent[];
  /** Request SMFIP_SKIP (the handler may answer a body chunk with skip). Default true. */
  readonly skip?: boolean;
  /** Request SMFIP_HDR_LEADSPC. Default false. The session hides it from the handler either way. */
  readonly headerLeadingSpace?: boolean;
  /** Request SMFIP_RCPT_REJ: also see recipients the MTA itself rejected. Default false. */
  readonly rejectedRecipients?: boolean;
  /**
   * Macro names to request per stage (`{daemon_addr}`, `j`, …), sent as SETSYMLIST when the
   * MTA allows it. Empty lists are not sent (the MTA's configured list then applies).
   */
  readonly macros?: Readonly<Partial<Record<MacroStage, readonly string[]>>>;
  /** Fail negotiation when the MTA does not accept macro lists. Default false. */
  readonly requireMacroLists?: boolean;
}

/** The outcome of negotiation: our answer and the session's routing table. */
export interface Negotiated {
  readonly offer: OptNeg;
  readonly version: number;
  readonly actions: number;
  readonly protocol: number;
  /** The SETSYMLIST entries sent: `[SMFIM_* stage, "space separated names"]`. */
  readonly macroLists: readonly (readonly [number, string])[];
  /** Whether our macro lists were sent (the MTA offered SMFIF_SETSYMLIST). */
  readonly macroListsSent: boolean;
  /** Largest packet data the MTA may now send us (informational; the codec enforces its own limit). */
  readonly maxDataSize: number;
  /** Events the handler is called for. */
  readonly wanted: ReadonlySet<MilterEvent>;
  /** Events the MTA was asked not to send. */
  readonly suppressed: ReadonlySet<MilterEvent>;
  /** Events the MTA expects no reply to. */
  readonly noReply: ReadonlySet<MilterEvent>;
  readonly skip: boolean;
  readonly headerLeadingSpace: boolean;
  readonly rejectedRecipients: boolean;
}

const ACTION_NAMES: readonly [number, string][] = [
  [SMFIF_ADDHDRS, 'SMFIF_ADDHDRS'],
  [SMFIF_CHGBODY, 'SMFIF_CHGBODY'],
  [SMFIF_ADDRCPT, 'SMFIF_ADDRCPT'],
  [SMFIF_DELRCPT, 'SMFIF_DELRCPT'],
  [SMFIF_CHGHDRS, 'SMFIF_CHGHDRS'],
  [SMFIF_QUARANTINE, 'SMFIF_QUARANTINE'],
  [SMFIF_CHGFROM, 'SMFIF_CHGFROM'],
  [SMFIF_ADDRCPT_PAR, 'SMFIF_ADDRCPT_PAR'],
  [SMFIF_SETSYMLIST, 'SMFIF_SETSYMLIST'],
];

/** Spec names of the SMFIF_* bits set in `mask`. */
export function actionNames(mask: number): string[] {
  return ACTION_NAMES.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
}

// `j`, `_` or `{name}`: the two macro name forms MTAs use.
const MACRO_NAME = /^(?:[!-~]|\{[!-z|~]+\})$/;

function macroLists(needs: MilterNeeds): [number, string][] {
  const out: [number, string][] = [];
  for (const [stage, code] of Object.entries(MACRO_STAGE_CODES) as [MacroStage, number][]) {
    const names = needs.macros?.[stage] ?? [];
    for (const n of names) {
      if (!MACRO_NAME.test(n)) throw new MilterUsageError('MILTER_OPTION_INVALID', `macro name ${JSON.stringify(n)} is neither one character nor {name}`);
    }
    if (names.length > 0) out.push([code, names.join(' ')]);
  }
  return out;
}

function fail(message: string): MilterProtocolError {
  return new MilterProtocolError('MILTER_NEGOTIATION', message);
}

/**
 * Negotiate. Returns the outcome, or a `MILTER_NEGOTIATION` error that must close the
 * connection (the MTA then applies its default action). Throws `MilterUsageError` only for
 * invalid `needs` (a programming error).
 */
export function negotiate(offer: OptNeg, needs: MilterNeeds = {}, maxFrameLength = DEFAULT_MAX_FRAME_LENGTH): Negotiated | MilterProtocolError {
  const lists = macroLists(needs);
  if (offer.version < SMFI_PROT_VERSION) {
    return fail(
      `the MTA offers milter protocol version ${offer.version}; version ${SMFI_PROT_VERSION} is required ` +
        '(Postfix: milter_protocol = 6; Sendmail 8.14 or later)',
    );
  }
  // libmilter: an offer of 0 means the version 1 set (engine.c st_optionneg).
  const mtaActions = offer.actions === 0 ? SMFI_V1_ACTS : offer.actions;
  const mtaProtocol = offer.protocol === 0 ? SMFI_V1_PROT : offer.protocol;
  const required = needs.requiredActions ?? 0;
  const missing = required & ~mtaActions;
  if (missing !== 0) return fail(`the MTA does not offer required actions ${actionNames(missing).join(', ')} (offered 0x${mtaActions.toString(16)})`);
  const symlist = lists.length > 0 && (mtaActions & SMFIF_SETSYMLIST) !== 0;
  if (needs.requireMacroLists === true && lists.length > 0 && !symlist) {
    return fail('the MTA does not accept macro lists (SMFIF_SETSYMLIST); configure the macros in the MTA instead');
  }
  const actions = (required | (needs.optionalActions ?? 0) | (symlist ? SMFIF_SETSYMLIST : 0)) & mtaActions;

  const wanted = new Set<MilterEvent>(needs.events ?? MILTER_EVENTS);
  const nrWanted = new Set<MilterEvent>(needs.noReply ?? []);
  const suppressed = new Set<MilterEvent>();
  const noReply = new Set<MilterEvent>();
  let protocol = 0;
  for (const ev of MILTER_EVENTS) {
    const { no, nr } = EVENT_BITS[ev];
    if (!wanted.has(ev) && (mtaProtocol & no) !== 0) {
      protocol |= no;
      suppressed.add(ev);
    } else if (nrWanted.has(ev) && (mtaProtocol & nr) !== 0) {
      protocol |= nr;
      noReply.add(ev);
    }
  }
  const skip = (needs.skip ?? true) && (mtaProtocol & SMFIP_SKIP) !== 0;
  const headerLeadingSpace = needs.headerLeadingSpace === true && (mtaProtocol & SMFIP_HDR_LEADSPC) !== 0;
  const rejectedRecipients = needs.rejectedRecipients === true && (mtaProtocol & SMFIP_RCPT_REJ) !== 0;
  if (skip) protocol |= SMFIP_SKIP;
  if (headerLeadingSpace) protocol |= SMFIP_HDR_LEADSPC;
  if (rejectedRecipients) protocol |= SMFIP_RCPT_REJ;
  let maxDataSize = MILTER_MDS_64K;
  if ((mtaProtocol & SMFIP_MDS_1M) !== 0 && maxFrameLength > MILTER_MDS_1M) {
    protocol |= SMFIP_MDS_1M;
    maxDataSize = MILTER_MDS_1M;
  } else if ((mtaProtocol & (SMFIP_MDS_1M | SMFIP_MDS_256K)) !== 0 && maxFrameLength > MILTER_MDS_256K) {
    protocol |= SMFIP_MDS_256K & mtaProtocol;
    if ((protocol & SMFIP_MDS_256K) !== 0) maxDataSize = MILTER_MDS_256K;
  }
  return {
    offer,
    version: Math.min(SMFI_PROT_VERSION, offer.version),
    actions,
    protocol,
    macroLists: symlist ? lists : [],
    macroListsSent: symlist,
    maxDataSize,
    wanted,
    suppressed,
    noReply,
    skip,
    headerLeadingSpace,
    rejectedRecipients,
  };
}

/** The SMFIC_OPTNEG answer for a negotiation outcome. */
export function optnegReply(n: Negotiated): MilterReply {
  return { kind: 'optneg', version: n.version, actions: n.actions, protocol: n.protocol, macros: n.macroLists };
}
