/**
 * Replies as data, and the one place they become wire text (style.md rule 5). Pure.
 *
 * - A decision's reply is sent exactly as the policy states it: code, enhanced status code and
 *   text. smtp-server's own enhanced-code table is never used (smtp-server 3.21 prefixes its own code from a fixed table: it would turn
 *   a policy `553 5.7.1` into `553 5.1.3 5.7.1`); it runs with `hideENHANCEDSTATUSCODES` and the
 *   code is written into the text here.
 * - The listener's own replies (syntax, sequence, bare line feeds, shutdown, internal failure)
 *   are the {@link LOCAL} table below, Postfix's wording where it has one.
 * - Replies smtp-server itself writes (`354`, `221 Bye`, `500 command not recognized`, …) get an
 *   enhanced code from {@link protocolEnhancedCode}, because ENHANCEDSTATUSCODES is advertised and
 *   RFC 2034 §3 then wants one on every reply but the greeting and the EHLO reply.
 */
import type { Advertise, Decision, SmtpReply } from '../../engine/types.js';
import type { UpstreamReply } from './next-hop.js';

/** What to answer, and whether to close the connection after it. */
export interface Outcome {
  readonly reply: SmtpReply;
  readonly close: boolean;
}

/** RFC 3463 `class.subject.detail` at the start of a reply text. */
export const ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

/** The reply text as sent after the code: the enhanced code first, when there is one. */
export function replyText(r: SmtpReply): string {
  return r.enhanced === '' ? r.text : `${r.enhanced} ${r.text}`;
}

/** The whole reply line without CRLF. */
export function replyLine(r: SmtpReply): string {
  return `${r.code} ${replyText(r)}`;
}

/** A decision's reply; `disconnect` closes the connection after it (adapters/README.md). */
export function decisionOutcome(d: Decision): Outcome {
  return { reply: d.reply, close: d.decision === 'disconnect' || d.reply.code === 421 };
}

/** The listener's own replies (never the policy's). */
export const LOCAL = {
  ehloSyntax: { code: 501, enhanced: '5.5.4', text: 'Syntax: EHLO hostname' },
  heloSyntax: { code: 501, enhanced: '5.5.4', text: 'Syntax: HELO hostname' },
  alreadyAuthenticated: { code: 503, enhanced: '5.5.1', text: 'Error: already authenticated' },
  authInTransaction: { code: 503, enhanced: '5.5.1', text: 'Error: MAIL transaction in progress' },
  authMechanismUnknown: { code: 504, enhanced: '5.5.4', text: 'Unsupported authentication mechanism' },
  starttlsNotOffered: { code: 502, enhanced: '5.5.1', text: 'Error: command not implemented' },
  tlsActive: { code: 503, enhanced: '5.5.1', text: 'Error: TLS already active' },
  needMail: { code: 503, enhanced: '5.5.1', text: 'Error: need MAIL command' },
  needRcpt: { code: 503, enhanced: '5.5.1', text: 'Error: need RCPT command' },
  // Postfix 3.9 smtpd_forbid_bare_newline: refuse, then disconnect (SMTP smuggling, CVE-2023-51766).
  bareLf: { code: 550, enhanced: '5.5.2', text: 'Error: bare <LF> received' },
  bareCr: { code: 550, enhanced: '5.5.2', text: 'Error: bare <CR> received' },
  lineTooLong: { code: 552, enhanced: '5.6.0', text: 'Error: message line too long (RFC 5322 2.1.1)' },
  headerTooLarge: { code: 552, enhanced: '5.3.4', text: 'Message header size exceeds fixed limit' },
  messageTooLarge: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' },
  internal: { code: 451, enhanced: '4.3.0', text: 'Error: internal error, try again later' },
  shuttingDown: { code: 421, enhanced: '4.3.2', text: 'Service shutting down, closing transmission channel' },
  sessionTimeout: { code: 421, enhanced: '4.4.2', text: 'Error: session time limit exceeded' },
} as const satisfies Record<string, SmtpReply>;

export type LocalReply = keyof typeof LOCAL;

export function local(which: LocalReply, close = false): Outcome {
  const reply = LOCAL[which];
  return { reply, close: close || reply.code === 421 };
}

/**
 * An enhanced status code for a reply smtp-server wrote itself (its text has none), RFC 3463.
 * Never used for a decision's reply, which always carries its own.
 */
export function protocolEnhancedCode(code: number, text: string): string {
  const cls = Math.floor(code / 100);
  if (cls === 2) return '2.0.0';
  if (code === 421) return /timeout/i.test(text) ? '4.4.2' : /shutting down|too many connected/i.test(text) ? '4.3.2' : '4.7.0';
  if (code === 452) return '4.5.3';
  if (code === 454) return '4.7.0';
  if (cls === 4) return '4.3.0';
  if (code === 501) return /sender address/i.test(text) ? '5.1.7' : /recipient address/i.test(text) ? '5.1.3' : '5.5.4';
  const fixed: Readonly<Record<number, string>> = { 500: '5.5.2', 502: '5.5.1', 503: '5.5.1', 504: '5.5.4', 530: '5.7.0', 535: '5.7.8', 538: '5.7.11', 552: '5.3.4' };
  return fixed[code] ?? '5.0.0';
}

/**
 * The text smtp-server is about to send after `code`, with an enhanced code: texts this module
 * rendered already start with one and pass unchanged; 1xx/3xx replies carry none (RFC 2034 §3).
 */
export function withEnhancedCode(code: number, text: string): string {
  if (code < 200 || (code >= 300 && code < 400) || ENHANCED_CODE.test(text)) return text;
  return text === '' ? protocolEnhancedCode(code, text) : `${protocolEnhancedCode(code, text)} ${text}`;
}

/** SASL mechanisms this listener implements (smtp-server's PLAIN and LOGIN; the back ends need the password). */
export const SASL_IMPLEMENTED: readonly string[] = ['PLAIN', 'LOGIN'];

/**
 * The EHLO reply lines after the greeting line, exactly what the decision advertises plus the
 * extensions the listener always supports (RFC 2920 PIPELINING, RFC 6152 8BITMIME, RFC 6531
 * SMTPUTF8, RFC 2034 ENHANCEDSTATUSCODES). Postfix's order. STARTTLS only when a certificate
 * can back it; SIZE without a number means no fixed limit (RFC 1870 §4).
 */
export function ehloKeywords(a: Advertise, tlsAvailable: boolean): string[] {
  const out = ['PIPELINING', a.size === null ? 'SIZE' : `SIZE ${a.size}`];
  if (a.starttls && tlsAvailable) out.push('STARTTLS');
  const mechs = a.auth.filter((m) => SASL_IMPLEMENTED.includes(m));
  if (mechs.length > 0) out.push(`AUTH ${mechs.join(' ')}`);
  out.push('ENHANCEDSTATUSCODES', '8BITMIME', 'SMTPUTF8');
  return out;
}

/**
 * A next hop's failure as the client's reply: the same code and text, so the client sees what
 * the next hop said (as Postfix's smtpd_proxy_filter passes the filter's reply back), except that 421 becomes 451 — it closes the
 * next hop's connection, not the client's — and a missing enhanced code is the class's X.0.0.
 */
export function mirrorUpstream(r: UpstreamReply): SmtpReply {
  const code = r.code === 421 ? 451 : r.code;
  const cls = Math.floor(code / 100);
  const enhanced = r.enhanced !== '' && r.enhanced.startsWith(`${cls}.`) ? r.enhanced : `${cls}.0.0`;
  const text = r.text.trim() === '' ? (cls === 4 ? 'Next hop: temporary failure' : 'Next hop: refused') : r.text.trim();
  return { code, enhanced, text };
}
