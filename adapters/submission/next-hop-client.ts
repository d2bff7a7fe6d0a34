/**
 * SMTP/LMTP client for proxy semantics (Postfix SMTPD_PROXY_README before-queue proxy semantics):
 * the listener opens the next hop's transaction when its client's starts, passes each RCPT
 * through as it arrives and mirrors the reply, streams DATA, and answers the client 250 only on
 * the next hop's own 2xx. No pipelining (as Postfix's smtpd_proxy_filter), one command at a time.
 *
 * Why not nodemailer's SMTPConnection: its public API is connect/login/send/reset/quit, and
 * send() issues MAIL and every RCPT in one go and then delivers to whichever recipients were
 * accepted — there is no way to answer one client RCPT with one next-hop RCPT (§0.6, §2.4 A.5).
 * Its dot-stuffing DataStream is reused.
 *
 * Every method resolves; nothing rejects. Failures are `UpstreamReply`s with `source: 'local'`.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream.js';
import { iterateMessage, type MessageSource } from './maildir.js';
import { localReply, parseReply, type UpstreamReply } from './next-hop.js';
import type { DataOutcome, MailParams, NextHopClientOptions, RcptParams } from './next-hop-types.js';

export type { DataOutcome, MailParams, NextHopClientOptions, NextHopTlsOptions, RcptParams } from './next-hop-types.js';

const MAX_REPLY_LINE = 2048; // RFC 5321 §4.5.3.1.5 says 512; leave room for chatty servers
const MAX_REPLY_LINES = 100;
const XTEXT = /^[!-<>-~]+$/; // RFC 3461 §4: printable ASCII except "="
const CTL = /[\x00-\x1f\x7f<>]/;

class HopError extends Error {
  constructor(readonly reply: UpstreamReply) {
    super(reply.detail ?? reply.text);
  }
}

/** One connection's line reader: complete replies in arrival order, waiters in request order. */
class Wire {
  private buf = '';
  private lines: string[] = [];
  private readonly replies: Array<UpstreamReply | undefined> = [];
  private waiter: ((r: UpstreamReply | undefined | Error) => void) | undefined;
  closed = false;

  constructor(readonly socket: net.Socket | tls.TLSSocket) {
    socket.setEncoding('utf8'); // StringDecoder: multi-byte characters split across reads survive
    socket.on('data', (s: string) => this.feed(s));
    socket.on('error', () => undefined); // 'close' follows and carries the failure
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.(new Error('connection closed by next hop'));
    });
  }

  /** Replies received but not asked for (e.g. a 421 between transactions). */
  get unsolicited(): number {
    return this.replies.length + this.lines.length + this.buf.length;
  }

  private feed(s: string): void {
    this.buf += s;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.lines.push(line);
      if (/^\d{3}-/.test(line) && this.lines.length < MAX_REPLY_LINES) continue;
      this.push(parseReply(this.lines));
      this.lines = [];
    }
    if (this.buf.length > MAX_REPLY_LINE) this.socket.destroy(new Error('reply line too long'));
  }

  private push(r: UpstreamReply | undefined): void {
    if (this.waiter !== undefined) this.waiter(r);
    else this.replies.push(r);
  }

  /** The next reply, or a local reply on timeout, close or garbage. */
  read(timeoutMs: number, what: string): Promise<UpstreamReply> {
    if (this.replies.length > 0) return Promise.resolve(this.checked(this.replies.shift(), what));
    if (this.closed) return Promise.reject(new HopError(localReply('connectionLost', `${what}: connection closed`)));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      const done = (r: UpstreamReply | undefined | Error): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (r instanceof Error) {
          this.socket.destroy();
          reject(new HopError(localReply('connectionLost', `${what}: ${r.message}`)));
        } else {
          try {
            resolve(this.checked(r, what));
          } catch (e) {
            reject(e);
          }
        }
      };
      this.waiter = done;
    });
  }

  private checked(r: UpstreamReply | undefined, what: string): UpstreamReply {
    if (r !== undefined) return r;
    this.socket.destroy();
    throw new HopError(localReply('connectionLost', `${what}: malformed reply`));
  }

  async write(data: string | Buffer, timeoutMs: number): Promise<void> {
    if (this.closed) throw new HopError(localReply('connectionLost', 'write: connection closed'));
    if (this.socket.write(data)) return;
    const t = AbortSignal.timeout(timeoutMs);
    try {
      await Promise.race([once(this.socket, 'drain', { signal: t }), once(this.socket, 'close', { signal: t })]);
    } catch {
      this.socket.destroy();
      throw new HopError(localReply('connectionLost', `write stalled for ${timeoutMs} ms`));
    }
    if (this.closed) throw new HopError(localReply('connectionLost', 'write: connection closed'));
  }
}

/**
 * A proxy client for one listener session: `mail` → `rcpt`… → `data`, repeated; `rset` to abandon
 * a transaction; `close` at the end. Connects at the first `mail`, and again after any failure.
 */
export class NextHopClient {
  private wire: Wire | undefined;
  private ext = new Map<string, string>();
  private accepted: string[] = [];
  private inTransaction = false;
  private readonly o: Required<Omit<NextHopClientOptions, 'tls' | 'auth'>> & Pick<NextHopClientOptions, 'tls' | 'auth'>;

  constructor(options: NextHopClientOptions) {
    this.o = { connectTimeoutMs: 30_000, commandTimeoutMs: 100_000, dataTimeoutMs: 600_000, reuse: true, ...options };
  }

  /** The next hop's EHLO/LHLO keywords (upper case) → parameters, once connected. */
  get extensions(): ReadonlyMap<string, string> {
    return this.ext;
  }

  /** Starts a transaction: connects (or reuses), then MAIL FROM with the supported parameters. */
  async mail(from: string, params: MailParams = {}): Promise<UpstreamReply> {
    return this.guard('MAIL', async () => {
      if (CTL.test(from) || (params.envid !== undefined && !XTEXT.test(params.envid))) return localReply('internal', 'MAIL: invalid sender or ENVID');
      if (this.inTransaction) await this.rset();
      const w = await this.connected();
      if (params.body === '8BITMIME' && !this.ext.has('8BITMIME')) return localReply('no8bitmime');
      if (params.smtpUtf8 === true && !this.ext.has('SMTPUTF8')) return localReply('noSmtpUtf8');
      let cmd = `MAIL FROM:<${from}>`;
      if (params.size !== undefined && this.ext.has('SIZE')) cmd += ` SIZE=${Math.trunc(params.size)}`;
      if (params.body !== undefined && this.ext.has('8BITMIME')) cmd += ` BODY=${params.body}`;
      if (params.smtpUtf8 === true) cmd += ' SMTPUTF8';
      if (this.ext.has('DSN')) {
        if (params.ret !== undefined) cmd += ` RET=${params.ret}`;
        if (params.envid !== undefined) cmd += ` ENVID=${params.envid}`;
      }
      const r = await this.command(w, cmd);
      this.inTransaction = r.code < 400;
      this.accepted = [];
      return r;
    });
  }

  /** One recipient; the next hop's reply, to mirror. */
  async rcpt(to: string, params: RcptParams = {}): Promise<UpstreamReply> {
    return this.guard('RCPT', async () => {
      if (CTL.test(to) || [params.notify, params.orcpt].some((p) => p !== undefined && !XTEXT.test(p))) return localReply('internal', 'RCPT: invalid recipient or parameter');
      const w = this.wire;
      if (!this.inTransaction || w === undefined) return localReply('connectionLost', 'RCPT: no transaction at the next hop');
      let cmd = `RCPT TO:<${to}>`;
      if (this.ext.has('DSN')) {
        if (params.notify !== undefined) cmd += ` NOTIFY=${params.notify}`;
        if (params.orcpt !== undefined) cmd += ` ORCPT=${params.orcpt}`;
      }
      const r = await this.command(w, cmd);
      if (r.code < 400) this.accepted.push(to);
      return r;
    });
  }

  /**
   * DATA with the message streamed and dot-stuffed. If the source fails (client gone), the
   * connection is dropped without the final dot, so the next hop delivers nothing.
   */
  async data(source: MessageSource): Promise<DataOutcome> {
    const recipients = [...this.accepted];
    const lmtp = this.o.hop.kind !== 'smtp';
    const all = (reply: UpstreamReply): DataOutcome => ({ reply, perRecipient: recipients.map((recipient) => ({ recipient, reply })) });
    const w = this.wire;
    if (!this.inTransaction || w === undefined) return all(localReply('connectionLost', 'DATA: the next hop transaction is gone'));
    if (recipients.length === 0) return all(localReply('internal', 'DATA: no recipient was accepted by the next hop'));
    this.inTransaction = false;
    this.accepted = [];
    try {
      const r = await this.command(w, 'DATA');
      if (r.code !== 354) {
        if (r.code < 400) throw new HopError(localReply('connectionLost', `DATA answered ${r.code}`));
        // MAIL and RCPT still stand at the next hop: clear them for the next transaction.
        this.inTransaction = true;
        await this.rset();
        return all(r);
      }
      const ds = new DataStream();
      const feeding = (async () => {
        for await (const chunk of iterateMessage(source)) if (!ds.write(chunk)) await once(ds, 'drain');
        ds.end();
      })();
      feeding.catch((e: unknown) => ds.destroy(e instanceof Error ? e : new Error(String(e))));
      try {
        for await (const out of ds) await w.write(out as Buffer, this.o.commandTimeoutMs);
        await feeding;
      } catch (e) {
        w.socket.destroy(); // no final dot: the next hop must not deliver a truncated message
        ds.destroy(new Error('aborted')); // and stop pulling from the source
        if (e instanceof HopError) throw e;
        throw new HopError(localReply('connectionLost', `DATA: message source failed: ${e instanceof Error ? e.message : String(e)}`));
      }
      if (!lmtp) return all(await w.read(this.o.dataTimeoutMs, 'end of data'));
      const perRecipient: Array<{ recipient: string; reply: UpstreamReply }> = [];
      for (const recipient of recipients) {
        try {
          perRecipient.push({ recipient, reply: await w.read(this.o.dataTimeoutMs, `end of data for ${recipient}`) });
        } catch (e) {
          // Lost after some answers: those stand; the rest are unknown, so tempfail them.
          const reply = e instanceof HopError ? e.reply : localReply('connectionLost');
          for (const rest of recipients.slice(perRecipient.length)) perRecipient.push({ recipient: rest, reply });
        }
      }
      const classes = new Set(perRecipient.map((p) => Math.floor(p.reply.code / 100)));
      const first = perRecipient[0]?.reply ?? localReply('internal');
      return { reply: classes.size === 1 ? first : localReply('mixedLmtp', 'LMTP recipients answered differently'), perRecipient };
    } catch (e) {
      this.drop();
      return all(e instanceof HopError ? e.reply : localReply('internal', String(e)));
    } finally {
      if (!this.o.reuse) await this.close();
    }
  }

  /** Abandons the current transaction (RSET); drops the connection if that fails. */
  async rset(): Promise<void> {
    this.accepted = [];
    if (!this.inTransaction) return;
    this.inTransaction = false;
    const w = this.wire;
    if (w === undefined) return;
    const r = await this.command(w, 'RSET').catch(() => undefined);
    if (r === undefined || r.code >= 400) this.drop();
  }

  /** QUIT and close; never rejects. */
  async close(): Promise<void> {
    const w = this.wire;
    this.wire = undefined;
    this.inTransaction = false;
    if (w === undefined || w.closed) return;
    await w.write('QUIT\r\n', 5000).catch(() => undefined);
    await w.read(5000, 'QUIT').catch(() => undefined);
    w.socket.destroy();
  }

  /** Drops the connection at once (client vanished). */
  abort(): void {
    this.drop();
  }

  private drop(): void {
    this.wire?.socket.destroy();
    this.wire = undefined;
    this.inTransaction = false;
    this.accepted = [];
  }

  private async guard(what: string, f: () => Promise<UpstreamReply>): Promise<UpstreamReply> {
    try {
      return await f();
    } catch (e) {
      this.drop();
      return e instanceof HopError ? e.reply : localReply('internal', `${what}: ${String(e)}`);
    }
  }

  private async command(w: Wire, line: string): Promise<UpstreamReply> {
    await w.write(`${line}\r\n`, this.o.commandTimeoutMs);
    return w.read(this.o.commandTimeoutMs, line.split(/[ :]/)[0] ?? line);
  }

  /** A ready connection: the current one if healthy and quiet, else a new one (greeting, EHLO, STARTTLS, AUTH). */
  private async connected(): Promise<Wire> {
    if (this.wire !== undefined && !this.wire.closed && this.wire.unsolicited === 0) return this.wire;
    this.drop();
    try {
      const w = await this.setup();
      this.wire = w;
      return w;
    } catch (e) {
      const detail = e instanceof HopError ? `${e.reply.detail ?? ''}${e.reply.source === 'peer' ? `next hop said ${e.reply.code} ${e.reply.text}` : ''}` : String(e);
      throw new HopError(localReply('unreachable', detail));
    }
  }

  private async setup(): Promise<Wire> {
    const hop = this.o.hop;
    const t = this.o.tls ?? {};
    const tlsOpts = (host: string): tls.ConnectionOptions => ({
      servername: t.servername ?? (net.isIP(host) === 0 ? host : undefined),
      ...(t.ca === undefined ? {} : { ca: t.ca }),
      rejectUnauthorized: t.rejectUnauthorized ?? true,
      minVersion: 'TLSv1.2',
      // Node verifies the certificate against servername, else host (IP SANs for an IP).
    });
    const implicit = hop.kind === 'smtp' && hop.implicitTls;
    const socket = hop.kind === 'lmtp-unix' ? net.connect({ path: hop.path }) : implicit ? tls.connect({ host: hop.host, port: hop.port, ...tlsOpts(hop.host) }) : net.connect({ host: hop.host, port: hop.port });
    const w = new Wire(socket);
    try {
      return await this.handshake(w, socket, implicit, tlsOpts);
    } catch (e) {
      w.socket.destroy(); // never leave a half-set-up connection behind
      socket.destroy();
      throw e;
    }
  }

  private async handshake(w0: Wire, socket: net.Socket, implicit: boolean, tlsOpts: (host: string) => tls.ConnectionOptions): Promise<Wire> {
    const hop = this.o.hop;
    const t = this.o.tls ?? {};
    let w = w0;
    await this.awaitConnect(socket, implicit ? 'secureConnect' : 'connect');
    let secure = implicit;
    const greeting = await w.read(this.o.commandTimeoutMs, 'greeting');
    if (greeting.code !== 220) throw new HopError(greeting);
    await this.hello(w);
    const starttls = t.starttls ?? 'opportunistic';
    if (!secure && hop.kind !== 'lmtp-unix' && starttls !== 'never' && (this.ext.has('STARTTLS') || starttls === 'required')) {
      if (!this.ext.has('STARTTLS')) throw new HopError(localReply('unreachable', 'STARTTLS required but not offered'));
      const r = await this.command(w, 'STARTTLS');
      if (r.code !== 220) throw new HopError(r);
      // Anything sent after the 220 and before the handshake is injected plaintext (CVE-2011-0411 class).
      if (w.unsolicited > 0) throw new HopError(localReply('unreachable', 'data after STARTTLS reply'));
      w.socket.removeAllListeners('data');
      const secured = tls.connect({ socket: w.socket, ...tlsOpts(hop.host) });
      w = new Wire(secured);
      await this.awaitConnect(secured, 'secureConnect');
      secure = true;
      await this.hello(w);
    }
    const auth = this.o.auth;
    if (auth !== undefined) {
      if (!secure) throw new HopError(localReply('unreachable', 'AUTH configured but the connection is not TLS; credentials not sent'));
      const mechs = (this.ext.get('AUTH') ?? '').toUpperCase().split(/\s+/);
      const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
      let r: UpstreamReply;
      if (mechs.includes('PLAIN')) r = await this.command(w, `AUTH PLAIN ${b64(`\0${auth.username}\0${auth.password}`)}`);
      else if (mechs.includes('LOGIN')) {
        r = await this.command(w, 'AUTH LOGIN');
        if (r.code === 334) r = await this.command(w, b64(auth.username));
        if (r.code === 334) r = await this.command(w, b64(auth.password));
      } else throw new HopError(localReply('unreachable', 'AUTH configured but the next hop offers neither PLAIN nor LOGIN'));
      if (r.code !== 235) throw new HopError(r);
    }
    return w;
  }

  private async awaitConnect(socket: net.Socket, event: 'connect' | 'secureConnect'): Promise<void> {
    const t = AbortSignal.timeout(this.o.connectTimeoutMs);
    try {
      await once(socket, event, { signal: t });
    } catch (e) {
      socket.destroy();
      const code = (e as NodeJS.ErrnoException).code;
      throw new HopError(localReply('unreachable', e instanceof Error && e.name === 'AbortError' ? 'connect timed out' : `${code ?? ''} ${(e as Error).message}`.trim()));
    }
  }

  private async hello(w: Wire): Promise<void> {
    const lmtp = this.o.hop.kind !== 'smtp';
    let r = await this.command(w, `${lmtp ? 'LHLO' : 'EHLO'} ${this.o.heloName}`);
    this.ext = new Map();
    if (r.code >= 500 && !lmtp) r = await this.command(w, `HELO ${this.o.heloName}`);
    if (r.code !== 250) throw new HopError(r);
    for (const line of r.lines.slice(1)) {
      const [kw = '', ...rest] = line.trim().split(/\s+/);
      if (kw !== '') this.ext.set(kw.toUpperCase(), rest.join(' '));
    }
  }
}
