/**
 * The milter adapter's public surface towards the enforcement layer: the handler it injects,
 * the verdicts and modifications the handler returns, and the logger it passes in. The
 * handler never sees bytes; the session never sees policy.
 */
import type { AdapterLogger } from '../shared/logger.js';
import type { AddressFamily, OptNeg } from './commands.js';
import type { MilterProtocolError } from './errors.js';
import type { Macros } from './macros.js';
import type { MilterNeeds, Negotiated } from './negotiate.js';
import type { MilterReply } from './replies.js';
import type { ReplyText } from './reply-text.js';

/** Pino-compatible logger (adapters/shared/logger.ts). */
export type MilterLogger = AdapterLogger;

/** SMFIC_CONNECT as the handler sees it. */
export interface ConnectInfo {
  /** PTR name, or `[192.0.2.1]` (Postfix) when there is none; `localhost` for Sendmail `-bs`. */
  readonly hostname: string;
  readonly family: AddressFamily;
  /** IP address (inet / inet6; Sendmail's `IPv6:` prefix removed). */
  readonly address?: string;
  /** Client port (inet / inet6). */
  readonly port?: number;
  /** Socket path (unix). */
  readonly path?: string;
}

/**
 * A handler's verdict for one command (adapters/spec/milter-v6.md §5, §7).
 *
 * - `continue` — go on.
 * - `accept` — at CONNECT/HELO: no more milter calls for this SMTP connection; at a message
 *   stage: accept the message without further milter calls.
 * - `reject` / `tempfail` — 5xx / 4xx. With `reply` the MTA sends that code and text
 *   (SMFIR_REPLYCODE); `reply.code` must be 5xx for reject, 4xx for tempfail. At RCPT only that
 *   recipient is refused; at CONNECT/HELO every later command of the SMTP session is; at other
 *   stages the message is. A `421` tempfail makes Postfix and Sendmail close the SMTP session —
 *   the portable "disconnect" ({@link disconnect}).
 * - `discard` — accept and silently drop the whole message (message stages only).
 * - `skip` — body chunks only: send no more body (SMFIR_SKIP where negotiated, else continue).
 * - `quarantine` — end of message only: SMFIR_QUARANTINE with `reason`, then accept
 *   (Postfix: hold queue).
 */
export type MilterAction =
  | { readonly kind: 'continue' }
  | { readonly kind: 'accept' }
  | { readonly kind: 'reject'; readonly reply?: ReplyText }
  | { readonly kind: 'tempfail'; readonly reply?: ReplyText }
  | { readonly kind: 'discard' }
  | { readonly kind: 'skip' }
  | { readonly kind: 'quarantine'; readonly reason: string };

/** The `kind` of a verdict. */
export type MilterActionKind = MilterAction['kind'];

/**
 * A change to the message, applied by the MTA at end of message only, in the order given.
 * Header values: without a leading space (the session adds what the MTA expects), folded with
 * LF + space/tab only, never CR or NUL. Each kind needs its SMFIF_* action negotiated;
 * otherwise the whole end of message becomes a tempfail (fail closed).
 *
 * Header indexes (milter-v6.md §5.3): `changeHeader.index` is the 1-based occurrence among
 * fields of that name, case-insensitive, counted in the message as received — an empty `value`
 * deletes that field. Postfix removes it at once (later indexes shift down: delete the highest
 * index first); Sendmail only marks it (indexes do not shift). `insertHeader.index` 0 is the top
 * of the header; Postfix counts its own (hidden) `Received:` as the first field, Sendmail counts
 * header fields the milter never saw — treat positions > 0 as approximate.
 */
export type Modification =
  | { readonly kind: 'addHeader'; readonly name: string; readonly value: string } // SMFIF_ADDHDRS
  | { readonly kind: 'insertHeader'; readonly index: number; readonly name: string; readonly value: string } // SMFIF_ADDHDRS
  | { readonly kind: 'changeHeader'; readonly index: number; readonly name: string; readonly value: string } // SMFIF_CHGHDRS
  /** With `args` (one space-separated ESMTP string) needs SMFIF_ADDRCPT_PAR, else SMFIF_ADDRCPT. */
  | { readonly kind: 'addRecipient'; readonly rcpt: string; readonly args?: string }
  | { readonly kind: 'deleteRecipient'; readonly rcpt: string } // SMFIF_DELRCPT
  | { readonly kind: 'changeSender'; readonly sender: string; readonly args?: string } // SMFIF_CHGFROM
  /** The whole new body (CRLF line ends); sent as contiguous ≤ 64 KiB chunks. SMFIF_CHGBODY. */
  | { readonly kind: 'replaceBody'; readonly body: Buffer }
  /** SMFIR_PROGRESS: restarts the MTA's timeout. */
  | { readonly kind: 'progress' };

/** What the handler answers at end of message. */
export interface EomResult {
  readonly modifications?: readonly Modification[];
  readonly action: MilterAction;
}

/** A value or a promise of it: handlers may be sync or async; both kinds of failure are caught. */
export type Awaitable<T> = T | Promise<T>;

/**
 * One per SMTP connection (a new one after SMFIC_QUIT_NC). Calls are strictly sequential and
 * only for events the handler negotiated. A throw, a rejected promise or a call that outlives
 * the session's handler deadline becomes SMFIR_TEMPFAIL (never accept/continue) and is logged.
 * `macros` is a snapshot of every macro the MTA has sent that is still in force.
 */
export interface MilterHandler {
  connect(info: ConnectInfo, macros: Macros): Awaitable<MilterAction>;
  helo(name: string, macros: Macros): Awaitable<MilterAction>;
  /** `args[0]` is the sender as typed, with `<>`; then one string per ESMTP parameter. */
  mail(args: readonly string[], macros: Macros): Awaitable<MilterAction>;
  rcpt(args: readonly string[], macros: Macros): Awaitable<MilterAction>;
  data(macros: Macros): Awaitable<MilterAction>;
  /** `value` as if SMFIP_HDR_LEADSPC was not negotiated: one leading space removed, LF folding. */
  header(name: string, value: string, macros: Macros): Awaitable<MilterAction>;
  eoh(macros: Macros): Awaitable<MilterAction>;
  /** One chunk (≤ the frame limit; MTAs send ≤ 65535 bytes), CRLF line ends, dot-unstuffed. */
  body(chunk: Buffer, macros: Macros): Awaitable<MilterAction>;
  eom(macros: Macros): Awaitable<EomResult>;
  /** An SMTP command the MTA did not know; absent → continue. */
  unknown?(command: string, macros: Macros): Awaitable<MilterAction>;
  /** The current message was abandoned (RSET, new MAIL, HELO, disconnect); no reply is sent. */
  abort(): Awaitable<void>;
  /** The SMTP connection ended (QUIT, QUIT_NC, EOF, protocol error). Called exactly once. */
  close(): Awaitable<void>;
}

/** Given to the handler factory when an SMTP connection starts. */
export interface HandlerContext {
  readonly negotiated: Negotiated;
  /** Child logger bound to this milter connection. */
  readonly logger: MilterLogger;
  /** Number of the milter connection (the `conn` of the server's log lines; 0 outside a server). */
  readonly connection: number;
  /** Sequence number of the SMTP connection on this milter connection (QUIT_NC increments). */
  readonly smtpConnection: number;
}

/** Creates the handler of one SMTP connection. */
export type HandlerFactory = (ctx: HandlerContext) => MilterHandler;

/**
 * The portable disconnect: a 421 tempfail. Postfix sends the text (at CONNECT its own
 * "421 <host> Service unavailable - try again later") and hangs up; Sendmail shuts the SMTP
 * session down ("421 " / "421-" replies, srvrsmtp.c).
 */
export function disconnect(enhanced = '4.7.0', text: string | readonly string[] = 'Service not available, closing transmission channel'): MilterAction {
  return { kind: 'tempfail', reply: { code: 421, enhanced, text } };
}

/** Default deadline for one handler call: below Sendmail's default 10 s read timeout (`T=R:10s`). */
export const DEFAULT_HANDLER_TIMEOUT_MS = 8000;
/** Default bound on the characters of all macros held for one connection. */
export const DEFAULT_MAX_MACRO_BYTES = 64 * 1024;

/** Options of {@link MilterSession}. */
export interface SessionOptions {
  /** Creates the handler of each SMTP connection (lazily, at its first event). */
  readonly createHandler: HandlerFactory;
  /** What to negotiate; a function receives the MTA's offer. Default: every event, no actions. */
  readonly needs?: MilterNeeds | ((offer: OptNeg) => MilterNeeds);
  readonly logger: MilterLogger;
  /** The codec's frame limit, so that Sendmail's SMFIP_MDS_* sizes are echoed only when they fit. */
  readonly maxFrameLength?: number;
  /** Deadline for one handler call in ms. Default {@link DEFAULT_HANDLER_TIMEOUT_MS}. */
  readonly handlerTimeoutMs?: number;
  /** Default {@link DEFAULT_MAX_MACRO_BYTES}. */
  readonly maxMacroBytes?: number;
  /** Number of this milter connection, for handlers' log lines (the server counts them). Default 0. */
  readonly connectionId?: number;
}

/** The session's answer to one command. */
export interface SessionStep {
  /** Replies to write, in order (possibly none). */
  readonly replies: readonly MilterReply[];
  /** Close the connection after writing `replies` (QUIT, or `error`). */
  readonly close: boolean;
  /** Why the connection must close, when the MTA broke the protocol. */
  readonly error?: MilterProtocolError;
}
