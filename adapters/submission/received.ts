/**
 * The listener's own `Received:` trace field (RFC 5321 §4.4, RFC 5322 §3.6.7), written the way
 * Postfix's smtpd writes it, so log parsers and humans read it the same:
 *
 *   Received: from client.example (unknown [192.0.2.7])
 *   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
 *   	(Authenticated sender: nancy)
 *   	by smtp.northwind.test (mta-policy) with ESMTPSA id 1a2b3c.1
 *   	for <bob@northwind.test>; Tue, 1 Dec 2026 10:00:00 +0000 (UTC)
 *
 * `with` is the RFC 3848 protocol keyword (ESMTP, ESMTPS, ESMTPA, ESMTPSA); `for` is written only
 * for a single recipient, as Postfix does, so a Bcc list is never disclosed. Pure: the caller
 * passes the date.
 */

export interface ReceivedFacts {
  /** The EHLO/HELO argument. */
  readonly helo: string;
  /** Whether the client greeted with EHLO (ESMTP) rather than HELO. */
  readonly esmtp: boolean;
  readonly clientIp: string;
  /** Reverse DNS name, when looked up and found. */
  readonly clientName?: string;
  readonly tls?: { readonly version?: string; readonly cipher?: string };
  /** The authenticated login. */
  readonly user?: string;
  /** This server's name (the connector's FQDN). */
  readonly by: string;
  readonly id: string;
  readonly recipients: readonly string[];
  readonly date: Date;
}

/** The field name, defined once. */
export const RECEIVED = 'Received';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 §3.3 date-time in UTC, e.g. `Tue, 1 Dec 2026 10:00:00 +0000 (UTC)`. */
export function rfc5322Date(d: Date): string {
  return `${DAYS[d.getUTCDay()] ?? ''}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()] ?? ''} ${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000 (UTC)`;
}

/**
 * Untrusted text inside the field: printable ASCII only, and no parentheses, so a client's HELO
 * or login cannot close a comment, add a clause or fold a line (RFC 5322 §3.2.2).
 */
function clean(s: string): string {
  return s.replace(/[^!-'*-~]/g, '?').slice(0, 255);
}

/** Key-length bits of a TLS cipher suite, when its name says (Postfix prints `(256/256 bits)`). */
function cipherBits(cipher: string): number | undefined {
  if (/AES_?256|CHACHA20|CAMELLIA_?256/i.test(cipher)) return 256;
  if (/AES_?128|CAMELLIA_?128/i.test(cipher)) return 128;
  return undefined;
}

/** RFC 3848 §2: ESMTP, then S for TLS, A for an authenticated client. */
export function withProtocol(esmtp: boolean, tls: boolean, authenticated: boolean): string {
  return esmtp ? `ESMTP${tls ? 'S' : ''}${authenticated ? 'A' : ''}` : 'SMTP';
}

/** The field value (after `Received:`), folded with CRLF TAB. */
export function receivedValue(f: ReceivedFacts): string {
  const ip = f.clientIp.includes(':') ? `IPv6:${f.clientIp}` : f.clientIp;
  const lines = [`from ${clean(f.helo) || 'unknown'} (${f.clientName === undefined ? 'unknown' : clean(f.clientName)} [${ip}])`];
  if (f.tls !== undefined) {
    const cipher = f.tls.cipher === undefined ? undefined : clean(f.tls.cipher);
    const bits = cipher === undefined ? undefined : cipherBits(cipher);
    const using = [clean(f.tls.version ?? 'TLS'), cipher === undefined ? '' : ` with cipher ${cipher}`, bits === undefined ? '' : ` (${bits}/${bits} bits)`].join('');
    lines.push(`(using ${using})`);
  }
  if (f.user !== undefined) lines.push(`(Authenticated sender: ${clean(f.user)})`);
  const proto = withProtocol(f.esmtp, f.tls !== undefined, f.user !== undefined);
  const only = f.recipients.length === 1 ? f.recipients[0] : undefined;
  lines.push(`by ${clean(f.by)} (mta-policy) with ${proto} id ${clean(f.id)}${only === undefined ? ';' : ''}`);
  lines.push(`${only === undefined ? '' : `for <${clean(only)}>; `}${rfc5322Date(f.date)}`);
  return lines.join('\r\n\t');
}

/** The whole field with its name and a final CRLF. */
export function receivedField(f: ReceivedFacts): string {
  return `${RECEIVED}: ${receivedValue(f)}\r\n`;
}
