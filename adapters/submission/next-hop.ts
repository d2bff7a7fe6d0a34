/**
 * Next hops of the submission listener (issue 7 "Forwarding without loss"): the one parser of
 * `next_hop` strings, shared by the configuration loader and the listener, and the reply type
 * the SMTP/LMTP proxy client (next-hop-client.ts) returns.
 *
 *   smtp://HOST[:PORT]    SMTP, default port 25; STARTTLS per the client's TLS options
 *   smtps://HOST[:PORT]   SMTP over implicit TLS (RFC 8314), default port 465
 *   lmtp://HOST:PORT      LMTP over TCP (RFC 2033: never port 25; no default)
 *   lmtp:/PATH            LMTP over a unix socket (Dovecot's `lmtp` listener)
 *   maildir:/DIR          final delivery into a Maildir (maildir.ts)
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address. Credentials never go in the
 * string (they would end up in logs): AUTH towards a smarthost is configured beside it.
 */
import net from 'node:net';
import { isAbsolute, resolve } from 'node:path';

/** A parsed next hop. */
export type NextHop =
  | { readonly kind: 'smtp'; readonly host: string; readonly port: number; readonly implicitTls: boolean }
  | { readonly kind: 'lmtp'; readonly host: string; readonly port: number }
  | { readonly kind: 'lmtp-unix'; readonly path: string }
  | { readonly kind: 'maildir'; readonly path: string };

/** A next hop reached over SMTP or LMTP (everything but `maildir`). */
export type ProxyNextHop = Exclude<NextHop, { kind: 'maildir' }>;

/** Why a `next_hop` string was refused. */
export interface NextHopParseFailure {
  readonly kind: 'invalid';
  readonly message: string;
}

export interface ParseNextHopOptions {
  /** Relative `lmtp:` / `maildir:` paths are resolved against this (the config file's directory). Without it they are refused. */
  readonly baseDir?: string;
}

const EXAMPLES = 'expected smtp://host:port, smtps://host:port, lmtp://host:port, lmtp:/path/to/socket or maildir:/path/to/dir';

/** Parses a `next_hop` string. Total: never throws. */
export function parseNextHop(text: string, opts: ParseNextHopOptions = {}): NextHop | NextHopParseFailure {
  const t = text.trim();
  const scheme = /^([a-z]+):/i.exec(t)?.[1]?.toLowerCase();
  const rest = scheme === undefined ? '' : t.slice(scheme.length + 1);
  if ((scheme === 'lmtp' && !rest.startsWith('//')) || scheme === 'maildir') {
    if (rest.startsWith('//')) return invalid(`maildir: takes a path (maildir:/var/mail/dir), not ${t}`);
    const path = pathOf(rest, opts);
    if (typeof path !== 'string') return path;
    return scheme === 'lmtp' ? { kind: 'lmtp-unix', path } : { kind: 'maildir', path };
  }
  if (scheme !== 'smtp' && scheme !== 'smtps' && scheme !== 'lmtp') return invalid(`unknown next hop "${t}": ${EXAMPLES}`);
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    return invalid(`"${t}" is not a valid URL: ${EXAMPLES}`);
  }
  if (url.username !== '' || url.password !== '') return invalid('credentials do not belong in the next hop URL (they would be logged); configure AUTH beside it');
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') return invalid(`"${t}" has a path, query or fragment; only ${scheme}://host:port is allowed`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') return invalid(`"${t}" has no host`);
  if (url.hostname.startsWith('[') && !net.isIPv6(host)) return invalid(`[${host}] is not an IPv6 address`);
  const defaults: Record<string, number | undefined> = { smtp: 25, smtps: 465, lmtp: undefined };
  const port = url.port === '' ? defaults[scheme] : Number(url.port);
  if (port === undefined) return invalid(`"${t}" needs a port: LMTP has no default port (RFC 2033 §5)`);
  if (scheme === 'lmtp' && port === 25) return invalid('LMTP must not use port 25 (RFC 2033 §5)');
  if (port < 1 || port > 65535) return invalid(`port ${port} is out of range`);
  return scheme === 'lmtp' ? { kind: 'lmtp', host, port } : { kind: 'smtp', host, port, implicitTls: scheme === 'smtps' };
}

function pathOf(p: string, opts: ParseNextHopOptions): string | NextHopParseFailure {
  if (p === '') return invalid(`a path is missing: ${EXAMPLES}`);
  if (p.includes('\0')) return invalid('the path contains a NUL character');
  if (isAbsolute(p)) return resolve(p);
  if (opts.baseDir === undefined) return invalid(`relative path "${p}" needs a base directory`);
  return resolve(opts.baseDir, p);
}

const invalid = (message: string): NextHopParseFailure => ({ kind: 'invalid', message });

/** The listener-facing text of a next hop, without secrets (for logs and `check`). */
export function formatNextHop(hop: NextHop): string {
  const host = (h: string): string => (net.isIPv6(h) ? `[${h}]` : h);
  switch (hop.kind) {
    case 'smtp':
      return `${hop.implicitTls ? 'smtps' : 'smtp'}://${host(hop.host)}:${hop.port}`;
    case 'lmtp':
      return `lmtp://${host(hop.host)}:${hop.port}`;
    case 'lmtp-unix':
      return `lmtp:${hop.path}`;
    case 'maildir':
      return `maildir:${hop.path}`;
  }
}

/**
 * A reply to mirror to the client. `source: 'peer'` is the next hop's own reply, code and text
 * as it sent them; `'local'` is our reply for a failure to reach or talk to it, with `detail`
 * for the log only (never for the client: Postfix's proxy, too, keeps internals out of replies).
 */
export interface UpstreamReply {
  readonly code: number;
  /** `c.s.d` when the reply carried one (RFC 2034), else ''. */
  readonly enhanced: string;
  /** First line's text without code and enhanced code. */
  readonly text: string;
  /** Every line's text without the code (multi-line replies), enhanced codes kept. */
  readonly lines: readonly string[];
  readonly source: 'peer' | 'local';
  readonly detail?: string;
}

/** The failures of our own, and their replies (RFC 3463 codes). */
export const LOCAL_REPLIES = {
  /** Could not connect, or greeting / EHLO / STARTTLS / AUTH failed: X.4.1 "No answer from host". */
  unreachable: { code: 451, enhanced: '4.4.1', text: 'Next hop not reachable, try again later' },
  /** Connection lost, timed out or garbled mid-transaction: X.4.2 "Bad connection". */
  connectionLost: { code: 451, enhanced: '4.4.2', text: 'Connection to next hop lost, try again later' },
  /** Our own bug or an impossible state: X.3.0. */
  internal: { code: 451, enhanced: '4.3.0', text: 'Internal error, try again later' },
  /** Client said BODY=8BITMIME, next hop lacks 8BITMIME: X.6.3 "Conversion required but not supported". */
  no8bitmime: { code: 554, enhanced: '5.6.3', text: 'Next hop does not accept 8-bit content' },
  /** Client said SMTPUTF8, next hop lacks it (RFC 6531 §3.4): X.6.7. */
  noSmtpUtf8: { code: 553, enhanced: '5.6.7', text: 'Next hop does not accept internationalised mail' },
  /** LMTP recipients answered differently at end of data: tempfail the lot so nothing is lost (duplicates at worst). */
  mixedLmtp: { code: 451, enhanced: '4.3.0', text: 'Not all recipients accepted the message, try again later' },
} as const;

/** Builds a local reply; `detail` is for the log. */
export function localReply(which: keyof typeof LOCAL_REPLIES, detail?: string): UpstreamReply {
  const r = LOCAL_REPLIES[which];
  const text = `${r.enhanced} ${r.text}`;
  return { code: r.code, enhanced: r.enhanced, text: r.text, lines: [text], source: 'local', ...(detail === undefined ? {} : { detail }) };
}

/**
 * Parses one complete reply (its lines without CRLF). Total: garbage is `undefined`.
 * RFC 5321 §4.2: every line carries the same code, `-` after it except on the last line.
 */
export function parseReply(lines: readonly string[]): UpstreamReply | undefined {
  let code: number | undefined;
  const texts: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/.exec(line);
    if (m === null) return undefined;
    const c = Number(m[1]);
    if (code !== undefined && c !== code) return undefined;
    code = c;
    if ((m[2] === '-') !== (i < lines.length - 1)) return undefined;
    texts.push((m[3] ?? '').replace(/[\x00-\x1f\x7f]/g, ' '));
  }
  if (code === undefined) return undefined;
  const first = texts[0] ?? '';
  const esc = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)(.*)$/.exec(first);
  return { code, enhanced: esc?.[1] ?? '', text: esc === null ? first : (esc[2] ?? ''), lines: texts, source: 'peer' };
}
