/**
 * What the next-hop client is given and answers (next-hop-client.ts speaks the protocol):
 * connection options, the MAIL/RCPT parameters passed through, the outcome of DATA.
 */
import type { ProxyNextHop, UpstreamReply } from './next-hop.js';

export interface NextHopTlsOptions {
  /**
   * STARTTLS towards an smtp:// or lmtp:// hop: `required` fails the hop when it is not offered or
   * does not verify; `opportunistic` uses it when offered (still verifying); `never`. Default
   * `opportunistic`. Ignored for smtps:// (TLS from the first byte) and unix sockets.
   */
  readonly starttls?: 'required' | 'opportunistic' | 'never';
  /** PEM CA certificates to trust instead of the system store (a private smarthost CA). */
  readonly ca?: string | Buffer;
  /** Name to verify and send as SNI; default: the hop's host. */
  readonly servername?: string;
  /** Certificate verification. Default true; false only for an explicit, logged operator decision. */
  readonly rejectUnauthorized?: boolean;
}

export interface NextHopClientOptions {
  readonly hop: ProxyNextHop;
  /** Our name in EHLO/LHLO. */
  readonly heloName: string;
  readonly tls?: NextHopTlsOptions;
  /** AUTH towards a smarthost (PLAIN, else LOGIN); only ever sent over TLS. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Connect timeout. Default 30 s. */
  readonly connectTimeoutMs?: number;
  /** Per command reply, and per stalled DATA write. Default 100 s (Postfix smtpd_proxy_timeout). */
  readonly commandTimeoutMs?: number;
  /** Reply to the final dot. Default 600 s (RFC 5321 §4.5.3.2.6). */
  readonly dataTimeoutMs?: number;
  /** Keep the connection for the client's next transaction (RSET between them). Default true. */
  readonly reuse?: boolean;
}

/** MAIL FROM parameters as the client negotiated them; sent only where the next hop supports them. */
export interface MailParams {
  readonly size?: number;
  readonly body?: '7BIT' | '8BITMIME';
  readonly smtpUtf8?: boolean;
  /** RFC 3461 RET and ENVID (ENVID xtext-encoded, as received). */
  readonly ret?: 'FULL' | 'HDRS';
  readonly envid?: string;
}

/** RCPT TO parameters (RFC 3461), as received; sent only when the next hop offers DSN. */
export interface RcptParams {
  readonly notify?: string;
  readonly orcpt?: string;
}

/** Outcome of DATA. `reply` is the one to give an SMTP client; `perRecipient` has LMTP's detail. */
export interface DataOutcome {
  readonly reply: UpstreamReply;
  /** LMTP: one reply per accepted recipient, in RCPT order. SMTP: every accepted recipient with `reply`. */
  readonly perRecipient: ReadonlyArray<{ readonly recipient: string; readonly reply: UpstreamReply }>;
}
