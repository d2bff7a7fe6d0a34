/**
 * Where a client connection's accepted mail goes: one {@link Relay} per client connection, bound
 * to the connector's next hop (engine/config: `next_hop`, else `server.next_hop`).
 *
 * Proxy semantics (Postfix before-queue `smtpd_proxy_filter`, SMTPD_PROXY_README): the next
 * hop's transaction runs inside the client's — MAIL and each RCPT are passed on as they arrive and
 * a refusal is mirrored, the message streams during DATA, and the client hears 250 only once the
 * next hop answered 2xx to its own end of data (or, for `maildir:`, once the file is fsynced and
 * renamed into `new/`). Nothing is queued here: the next hop is the queue.
 */
import type { NextHop } from '../../engine/config/types.js';
import { deliverToMaildir, MaildirError } from './maildir.js';
import { NextHopClient, type MailParams, type NextHopClientOptions } from './next-hop-client.js';
import { localReply, type ProxyNextHop, type UpstreamReply } from './next-hop.js';

/** One client connection's path to the next hop. Methods resolve; failures are replies. */
export interface Relay {
  /** MAIL FROM at the next hop: null when it accepted, else its refusal (or ours for an unreachable hop). */
  mail(from: string, params: MailParams): Promise<UpstreamReply | null>;
  /** One RCPT TO, the same way. */
  rcpt(to: string): Promise<UpstreamReply | null>;
  /**
   * The message, streamed from `source`. The result is final: 2xx means the next hop took
   * responsibility. When `source` throws, nothing is delivered (no final dot; no file in new/).
   */
  data(source: AsyncIterable<Buffer>): Promise<UpstreamReply>;
  /** Abandons the transaction (RSET at the next hop). */
  rset(): Promise<void>;
  /** Ends the connection politely (QUIT). */
  close(): Promise<void>;
}

/** Options for next hops reached over SMTP/LMTP (timeouts, STARTTLS, smarthost AUTH). */
export type ProxyOptions = Omit<NextHopClientOptions, 'hop' | 'heloName'>;

/** The next-hop client's form of a configured SMTP/LMTP next hop. */
export function proxyHop(hop: Exclude<NextHop, { kind: 'maildir' }>): ProxyNextHop {
  const a = hop.address;
  if (a.kind === 'unix') return { kind: 'lmtp-unix', path: a.path };
  return hop.kind === 'lmtp' ? { kind: 'lmtp', host: a.host, port: a.port } : { kind: 'smtp', host: a.host, port: a.port, implicitTls: false };
}

/** A relay for `hop`, speaking as `heloName` (the connector's FQDN). */
export function createRelay(hop: NextHop, heloName: string, options: ProxyOptions = {}): Relay {
  return hop.kind === 'maildir' ? new MaildirRelay(hop.dir) : new ProxyRelay(new NextHopClient({ ...options, hop: proxyHop(hop), heloName }));
}

const refused = (r: UpstreamReply): UpstreamReply | null => (r.code < 400 ? null : r);

class ProxyRelay implements Relay {
  constructor(private readonly client: NextHopClient) {}

  async mail(from: string, params: MailParams): Promise<UpstreamReply | null> {
    return refused(await this.client.mail(from, params));
  }

  async rcpt(to: string): Promise<UpstreamReply | null> {
    return refused(await this.client.rcpt(to));
  }

  async data(source: AsyncIterable<Buffer>): Promise<UpstreamReply> {
    // LMTP answers per recipient; the client is SMTP and gets one reply: the client's, unless
    // they differ, when next-hop-client.ts tempfails the lot (duplicates at worst, never a loss).
    return (await this.client.data(source)).reply;
  }

  rset(): Promise<void> {
    return this.client.rset();
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** Final delivery into one Maildir (maildir.ts): one file per message, whatever the recipients. */
class MaildirRelay implements Relay {
  private from: string | undefined;

  constructor(private readonly dir: string) {}

  mail(from: string): Promise<UpstreamReply | null> {
    this.from = from;
    return Promise.resolve(null);
  }

  rcpt(): Promise<UpstreamReply | null> {
    return Promise.resolve(this.from === undefined ? localReply('internal', 'RCPT before MAIL') : null);
  }

  async data(source: AsyncIterable<Buffer>): Promise<UpstreamReply> {
    const returnPath = this.from;
    this.from = undefined;
    if (returnPath === undefined) return localReply('internal', 'DATA before MAIL');
    try {
      // The listener enforces the size limit while streaming; the Maildir takes what it gets.
      const d = await deliverToMaildir(this.dir, source, { maxBytes: Number.MAX_SAFE_INTEGER, returnPath });
      const text = `Ok: delivered as ${d.name}`;
      return { code: 250, enhanced: '2.0.0', text, lines: [`2.0.0 ${text}`], source: 'local', detail: d.path };
    } catch (e) {
      if (!(e instanceof MaildirError)) return localReply('internal', String(e));
      const r = e.reply;
      return { code: r.code, enhanced: r.enhanced, text: r.text, lines: [`${r.enhanced} ${r.text}`], source: 'local', detail: e.message };
    }
  }

  rset(): Promise<void> {
    this.from = undefined;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
