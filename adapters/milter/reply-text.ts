/**
 * SMFIR_REPLYCODE text: the one place that knows its rules (adapters/spec/milter-v6.md §6).
 *
 * - Every line is `ddd` + (`-` when more lines follow, else SP) + `x.y.z` + SP + text, with the
 *   same `ddd` on every line and the enhanced class equal to the code's first digit (Postfix
 *   rejects the reply otherwise, milter8.c `SMFIR_REPLYCODE`; RFC 3463 §2).
 * - Code 4xx only with a tempfail, 5xx only with a reject: libmilter sends the text only when
 *   the classes agree (engine.c `sendreply`), and an MTA acts on the code's class anyway.
 * - `%` is doubled: Sendmail uses the text as a format string (a lone `%` replaces the whole
 *   reply with its stage default); Postfix turns `%%` back into `%`.
 * - Lines are joined with CRLF, no trailing CRLF; at most 32 lines (libmilter MAXREPLIES), each
 *   at most 510 octets (RFC 5321 §4.5.3.1.5: 512 with CRLF), the whole text at most 980
 *   characters (libmilter MAXREPLYLEN).
 * - A 421 closes the SMTP session in both MTAs (the portable "disconnect").
 */
import { MilterProtocolError, MilterUsageError } from './errors.js';

/** libmilter MAXREPLIES. */
export const MAX_REPLY_LINES = 32;
/** libmilter MAXREPLYLEN, applied to the whole wire text. */
export const MAX_REPLY_TEXT = 980;
/** RFC 5321 §4.5.3.1.5 reply line, without its CRLF. */
export const MAX_REPLY_LINE = 510;

/**
 * An SMTP reply a handler wants sent. Structurally compatible with the engine's `SmtpReply`
 * (`{ code, enhanced, text }`), so a decision's reply can be passed through unchanged.
 */
export interface ReplyText {
  /** 4xx or 5xx. 421 disconnects the SMTP client in Postfix and Sendmail. */
  readonly code: number;
  /** RFC 3463 `c.s.d` with `c` = first digit of `code`; empty or absent → `c.0.0`. */
  readonly enhanced?: string;
  /** One line, or several (a multi-line reply). Plain text: no CR, LF or NUL; `%` is fine. */
  readonly text: string | readonly string[];
}

/** A decoded reply text (MTA side): `%%` already turned back into `%`. */
export interface ParsedReplyText {
  readonly code: number;
  readonly enhanced: string;
  readonly lines: readonly string[];
}

const CODE = /^[45][0-5][0-9]$/;
const ENHANCED = /^([245])\.[0-9]{1,3}\.[0-9]{1,3}$/;
// C0 controls and DEL: never part of reply text (CR/LF would inject reply lines).
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const WIRE_LINE = /^([45][0-5][0-9])([ -])([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: (.*))?$/s;

function refuse(why: string): MilterUsageError {
  return new MilterUsageError('MILTER_REPLY_INVALID', why);
}

/**
 * Render `reply` as SMFIR_REPLYCODE text. `verdict` is the verdict it rides on; the code's class
 * must match it. Throws `MilterUsageError('MILTER_REPLY_INVALID')` on any rule above.
 */
export function formatReplyText(reply: ReplyText, verdict: 'reject' | 'tempfail'): string {
  const code = String(reply.code);
  if (!CODE.test(code)) throw refuse(`reply code ${code} is not a 4xx or 5xx SMTP code`);
  const cls = code[0] as string;
  if (verdict === 'reject' && cls !== '5') throw refuse(`a reject needs a 5xx code, got ${code}`);
  if (verdict === 'tempfail' && cls !== '4') throw refuse(`a tempfail needs a 4xx code, got ${code}`);
  const enhanced = reply.enhanced === undefined || reply.enhanced === '' ? `${cls}.0.0` : reply.enhanced;
  const m = ENHANCED.exec(enhanced);
  if (m === null) throw refuse(`enhanced code ${JSON.stringify(enhanced)} is not c.s.d`);
  if (m[1] !== cls) throw refuse(`enhanced code ${enhanced} does not match the class of ${code}`);
  const lines = typeof reply.text === 'string' ? [reply.text] : reply.text;
  if (lines.length === 0) throw refuse('a reply needs at least one line');
  if (lines.length > MAX_REPLY_LINES) throw refuse(`${lines.length} reply lines, at most ${MAX_REPLY_LINES}`);
  const out: string[] = [];
  lines.forEach((text, i) => {
    if (CONTROL.test(text)) throw refuse('reply text contains CR, LF, NUL or another control character');
    const sep = i === lines.length - 1 ? ' ' : '-';
    const line = `${code}${sep}${enhanced}${text === '' ? '' : ` ${text.replaceAll('%', '%%')}`}`;
    if (Buffer.byteLength(line) > MAX_REPLY_LINE) throw refuse(`reply line of ${Buffer.byteLength(line)} octets, at most ${MAX_REPLY_LINE}`);
    out.push(line);
  });
  const wire = out.join('\r\n');
  if (wire.length > MAX_REPLY_TEXT) throw refuse(`reply text of ${wire.length} characters, at most ${MAX_REPLY_TEXT}`);
  return wire;
}

function parseLines(text: string): ParsedReplyText | string {
  const raw = text.split('\r\n');
  if (raw.length > MAX_REPLY_LINES) return `${raw.length} lines, at most ${MAX_REPLY_LINES}`;
  if (text.length > MAX_REPLY_TEXT) return `${text.length} characters, at most ${MAX_REPLY_TEXT}`;
  let code: string | undefined;
  let enhanced: string | undefined;
  const lines: string[] = [];
  for (const [i, line] of raw.entries()) {
    const m = WIRE_LINE.exec(line);
    if (m === null) return `line ${i + 1} is not "ddd[ -]c.s.d text": ${JSON.stringify(line)}`;
    const [, c, sep, e, body = ''] = m;
    if (code !== undefined && c !== code) return `line ${i + 1} changes the code from ${code} to ${c}`;
    if ((e as string)[0] !== (c as string)[0]) return `enhanced code ${e} does not match the class of ${c}`;
    if ((sep === ' ') !== (i === raw.length - 1)) return `line ${i + 1} has the wrong continuation mark`;
    if (CONTROL.test(body)) return `line ${i + 1} contains a control character`;
    if ((body.match(/%+/g) ?? []).some((run) => run.length % 2 !== 0)) return `line ${i + 1} has an unescaped %`;
    code = c;
    enhanced ??= e;
    lines.push(body.replaceAll('%%', '%'));
  }
  return { code: Number(code), enhanced: enhanced as string, lines };
}

/** Why `text` is not valid wire reply text, or undefined when it is. */
export function checkReplyText(text: string): string | undefined {
  const r = parseLines(text);
  return typeof r === 'string' ? `invalid SMFIR_REPLYCODE text: ${r}` : undefined;
}

/** Parse wire reply text as an MTA would (strictly), undoing the `%` escaping. */
export function parseReplyText(text: string): ParsedReplyText | MilterProtocolError {
  const r = parseLines(text);
  return typeof r === 'string' ? new MilterProtocolError('MILTER_REPLY_MALFORMED', `SMFIR_REPLYCODE: ${r}`) : r;
}
