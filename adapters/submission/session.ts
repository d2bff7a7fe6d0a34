/**
 * One client connection of the submission listener, socket-free: what each SMTP command means
 * for the engine's Session (adapters/README.md, the seam), the credential back ends and the
 * relay to the next hop. server.ts calls it from smtp-server's handlers and sends what it returns;
 * it never sees a socket.
 *
 * Contracts:
 * - Every reply is the decision's exact reply (code, enhanced code, text), or one of the
 *   listener's own from replies.ts; `close` says whether to end the connection after it.
 * - TLS and AUTH state are re-checked here at MAIL, RCPT and DATA against what smtp-server thinks
 *   (its gates have holes: an AUTH it never ran, TLS it lost track of); a mismatch is a 451.
 * - Proxy semantics (Postfix smtpd_proxy_filter): MAIL and each RCPT go to the next hop after the
 *   policy passed them, refusals are mirrored; the message streams to the next hop once the
 *   headers are in, and its final dot is sent only after the end-of-message decision accepted.
 *   The client hears 250 only after the next hop answered 2xx. A discard, a refusal, a bare LF,
 *   an oversized message or a client that goes away all abandon the next hop's copy (no final
 *   dot; no rename into the Maildir's new/).
 * - Nothing here throws to the caller: an unexpected failure is `451 4.3.0`.
 */
import type { ConnectorConfig } from '../../engine/config/types.js';
import type { Engine } from '../../engine/engine.js';
import type { ListenerSpec } from '../../engine/listeners.js';
import type { Session } from '../../engine/session.js';
import type { Advertise, MessageDecision, TlsFacts } from '../../engine/types.js';
import type { CredentialStore } from './credentials.js';
import { addedFields, headerFacts, HeaderSplitter, LineChecker, rewriteHeader, type HeaderBlock, type Violation } from './message.js';
import type { MailParams } from './next-hop-client.js';
import type { UpstreamReply } from './next-hop.js';
import { MessagePipe } from './pipe.js';
import { receivedField } from './received.js';
import type { Relay } from './relay.js';
import { decisionOutcome, ehloKeywords, local, mirrorUpstream, SASL_IMPLEMENTED, type Outcome } from './replies.js';

/** What every connection of one listener shares. */
export interface ListenerContext {
  readonly engine: Engine;
  readonly spec: ListenerSpec;
  readonly connector: ConnectorConfig;
  readonly credentials: CredentialStore;
  /** A relay to the connector's next hop, made when the connection's first MAIL passes. */
  readonly relay: () => Relay;
  /** Whether a certificate backs STARTTLS on this listener. */
  readonly tlsAvailable: boolean;
  /** Delay before answering a failed logon (tarpit). */
  readonly authFailureDelayMs: number;
  readonly now?: () => Date;
}

/** What smtp-server knows about the connection at CONNECT. */
export interface ConnectionFacts {
  readonly id: string;
  readonly local: { readonly ip: string; readonly port: number };
  readonly remote: { readonly ip: string; readonly port: number };
  /** Implicit TLS: the handshake is done before CONNECT. */
  readonly tls: TlsFacts | null;
}

/** A MAIL FROM as smtp-server parsed it. */
export interface MailCommand {
  /** The reverse-path without brackets ('' for the null sender). */
  readonly address: string;
  /** Parameters, upper-case keys; a keyword without value is `true`. */
  readonly args: Readonly<Record<string, string | boolean>>;
}

/** What an AUTH exchange delivered (PLAIN/LOGIN, decoded by smtp-server). */
export interface AuthAttempt {
  readonly mechanism: string;
  readonly username: string;
  readonly authzid?: string;
  readonly password: string;
}

export type AuthOutcome = { readonly ok: true; readonly user: string; readonly outcome: Outcome } | { readonly ok: false; readonly outcome: Outcome };

const VIOLATION_REPLY = { bare_lf: 'bareLf', bare_cr: 'bareCr', line_too_long: 'lineTooLong', header_too_large: 'headerTooLarge' } as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A login the engine accepts as a fact (non-empty, no surrounding space, bounded); else a placeholder. */
function loginFact(name: string): string {
  return name.length > 0 && name.length <= 255 && name.trim() === name ? name : '(invalid login)';
}

export class SubmissionSession {
  private readonly s: Session;
  private advertised: Advertise | null = null;
  private heloName = '';
  private esmtp = false;
  private relayed: Relay | null = null;
  private relayOpen = false;
  private recipients: string[] = [];
  private transactions = 0;
  private busy = false;
  private tlsState: TlsFacts;

  constructor(private readonly ctx: ListenerContext, private readonly conn: ConnectionFacts) {
    this.tlsState = conn.tls ?? {};
    this.s = ctx.engine.session({ local: conn.local, remote: conn.remote, tls: conn.tls }, { logBindings: { conn: conn.id, adapter: 'submission' } });
  }

  /** Whether a transaction (MAIL … end of DATA) is in flight: graceful shutdown waits for it. */
  get inFlight(): boolean {
    return this.busy || this.s.inTransaction;
  }

  get user(): string | null {
    return this.s.user;
  }

  /** CONNECT: the greeting (the decision's 220) or the refusal, which closes. */
  async connect(): Promise<Outcome> {
    const d = await this.s.connect();
    return d.decision === 'continue' ? { reply: d.reply, close: false } : { reply: d.reply, close: true };
  }

  /** EHLO/HELO: on `continue`, the keyword lines to advertise after the decision's first line. */
  async hello(verb: 'EHLO' | 'HELO', name: string): Promise<{ outcome: Outcome; keywords: string[] | null }> {
    await this.abandon();
    const d = await this.s.helo(name);
    if (d.decision !== 'continue') return { outcome: decisionOutcome(d), keywords: null };
    this.heloName = name;
    this.esmtp = verb === 'EHLO';
    this.advertised = d.advertise;
    return { outcome: decisionOutcome(d), keywords: verb === 'EHLO' ? ehloKeywords(d.advertise, this.ctx.tlsAvailable) : null };
  }

  /** STARTTLS: null when it may go ahead, else the refusal. */
  starttlsRefusal(): Outcome | null {
    if (this.s.tlsActive) return local('tlsActive');
    if (this.advertised === null || !this.advertised.starttls || !this.ctx.tlsAvailable) return local('starttlsNotOffered');
    return null;
  }

  /** The TLS handshake after STARTTLS completed: the session starts afresh (RFC 3207 §4.2). */
  async secured(tls: TlsFacts): Promise<void> {
    await this.abandon();
    this.s.starttls(tls);
    this.tlsState = tls;
    this.advertised = null;
    this.heloName = '';
  }

  /**
   * Before the client is asked for credentials: null when `mechanism` may be tried now, else the
   * refusal (a mechanism the last EHLO did not offer gets the policy's own reply for it: AUTH not
   * enabled, TLS needed first, mechanism not offered).
   */
  async authRefusal(mechanism: string, smtpServerUser: unknown): Promise<Outcome | null> {
    if (this.s.user !== null || smtpServerUser) return local('alreadyAuthenticated');
    if (this.s.inTransaction) return local('authInTransaction');
    if (!SASL_IMPLEMENTED.includes(mechanism)) return local('authMechanismUnknown');
    if (this.advertised?.auth.includes(mechanism) === true) return null;
    // Ask the policy why, without credentials: a tempfail result is never a logon failure, and
    // the refusals for TLS and mechanism come before it (policies/mta/checks.rego, auth orders 1-4).
    const d = await this.s.auth({ mechanism, user: '(no credentials yet)', result: 'tempfail' });
    return decisionOutcome(d);
  }

  /** AUTH with the credentials: checked against the back ends, then judged by the policy. */
  async authenticate(a: AuthAttempt): Promise<AuthOutcome> {
    const cred = await this.ctx.credentials.check({
      mechanism: a.mechanism,
      username: a.username,
      ...(a.authzid === undefined ? {} : { authzid: a.authzid }),
      password: a.password,
      remoteIp: this.conn.remote.ip,
      remotePort: this.conn.remote.port,
      localIp: this.conn.local.ip,
      localPort: this.conn.local.port,
      secured: this.s.tlsActive,
      session: this.conn.id,
    });
    const user = cred.result === 'success' ? cred.user : loginFact(a.username);
    const d = await this.s.auth({ mechanism: a.mechanism, user, result: cred.result });
    if (d.decision === 'continue') return { ok: true, user, outcome: decisionOutcome(d) };
    // Exchange's tarpit: a failed logon is answered late, which slows password guessing.
    if (d.logon_failure && this.ctx.authFailureDelayMs > 0) await sleep(this.ctx.authFailureDelayMs);
    return { ok: false, outcome: decisionOutcome(d) };
  }

  /** Whether smtp-server's view of TLS and AUTH agrees with the engine session's. */
  private stateMismatch(secure: boolean, smtpServerUser: unknown): Outcome | null {
    const theirs = typeof smtpServerUser === 'string' && smtpServerUser !== '' ? smtpServerUser : null;
    return secure !== this.s.tlsActive || theirs !== this.s.user ? local('internal') : null;
  }

  /** MAIL FROM: the policy, then the next hop. */
  async mail(m: MailCommand, secure: boolean, smtpServerUser: unknown): Promise<Outcome> {
    const bad = this.stateMismatch(secure, smtpServerUser);
    if (bad !== null) return bad;
    await this.abandon();
    const params: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(m.args)) params[k] = k === 'SIZE' && typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : v;
    const d = await this.s.mail(`<${m.address}>`, params);
    if (d.decision !== 'continue') return decisionOutcome(d);
    this.relayed ??= this.ctx.relay();
    const refused = await this.relayed.mail(m.address, mailParams(m.args));
    this.relayOpen = true;
    if (refused !== null) {
      this.s.rset();
      await this.abandon();
      return { reply: mirrorUpstream(refused), close: false };
    }
    this.recipients = [];
    return decisionOutcome(d);
  }

  /** RCPT TO: the policy, then the next hop. */
  async rcpt(address: string, secure: boolean, smtpServerUser: unknown): Promise<Outcome> {
    const bad = this.stateMismatch(secure, smtpServerUser);
    if (bad !== null) return bad;
    const d = await this.s.rcpt(`<${address}>`);
    if (d.decision !== 'continue') return decisionOutcome(d);
    const refused = this.relayed === null ? null : await this.relayed.rcpt(address);
    if (refused !== null) return { reply: mirrorUpstream(refused), close: false };
    this.recipients.push(address);
    return decisionOutcome(d);
  }

  /** RSET: the transaction ends here and at the next hop. */
  async rset(): Promise<void> {
    this.s.rset();
    await this.abandon();
  }

  /** Ends the next hop's transaction, if one is open. */
  private async abandon(): Promise<void> {
    this.recipients = [];
    if (!this.relayOpen || this.relayed === null) return;
    this.relayOpen = false;
    await this.relayed.rset().catch(() => undefined);
  }

  /**
   * DATA: the message as smtp-server streams it (dot-unstuffed, without the final dot). Reads all
   * of it whatever happens, so the reply comes after the client's final dot; rejects only when
   * the client went away (its stream errors), after abandoning the next hop's copy.
   */
  async data(stream: AsyncIterable<Buffer>, secure: boolean, smtpServerUser: unknown): Promise<Outcome> {
    this.busy = true;
    try {
      const bad = this.stateMismatch(secure, smtpServerUser);
      if (bad !== null) {
        for await (const _ of stream) void _;
        return bad;
      }
      return await this.message(stream);
    } finally {
      this.busy = false;
      this.relayOpen = false;
      this.recipients = [];
    }
  }

  private async message(stream: AsyncIterable<Buffer>): Promise<Outcome> {
    const limits = this.ctx.engine.limits;
    const lines = new LineChecker();
    const splitter = new HeaderSplitter({ maxBytes: limits.headerBytes, maxFields: limits.headerFields, maxValueBytes: limits.headerValueBytes });
    const cap = this.ctx.spec.maxMessageSize;
    const m: { size: number; violation: Violation | null; stop: Outcome | null; tooBig: boolean; started: Started | null } = { size: 0, violation: null, stop: null, tooBig: false, started: null };
    const begin = async (block: HeaderBlock, rest: Buffer | null): Promise<void> => {
      const r = await this.startMessage(block);
      if ('reply' in r) m.stop = r;
      else {
        m.started = r;
        if (rest !== null && rest.length > 0) await r.pipe.push(rest);
      }
    };
    try {
      for await (const chunk of stream) {
        m.size += chunk.length;
        if (m.violation !== null || m.stop !== null || m.tooBig) continue; // drain to the final dot
        m.violation = lines.feed(chunk);
        if (m.violation === null && cap !== null && m.size > cap) m.tooBig = true;
        if (m.violation !== null || m.tooBig) m.started?.pipe.fail(m.violation ?? 'message too large');
        else if (m.started !== null) await m.started.pipe.push(chunk);
        else {
          const r = splitter.push(chunk);
          if (typeof r === 'string') m.violation = r;
          else if (r !== null) await begin(r.block, r.rest);
        }
      }
    } catch {
      m.started?.pipe.fail('the client connection was lost');
      await m.started?.delivery;
      this.s.rset();
      await this.abandon();
      return local('internal', true);
    }
    m.violation ??= lines.end();
    if (m.violation === null && !m.tooBig && m.stop === null && m.started === null) {
      const b = splitter.end();
      if (typeof b === 'string') m.violation = b;
      else await begin(b, null);
    }
    const st = m.started;
    if (m.violation !== null || m.stop !== null) {
      st?.pipe.fail(m.violation ?? 'refused at end of headers');
      await st?.delivery;
      this.s.rset();
      await this.abandon();
      return m.violation !== null ? local(VIOLATION_REPLY[m.violation]) : m.stop ?? local('internal');
    }
    if (st === null) {
      // Too large before the header block ended: the policy still decides, but nothing was kept.
      this.s.rset();
      await this.abandon();
      return local(m.tooBig ? 'messageTooLarge' : 'internal');
    }
    const eom = await this.s.eom(m.size);
    if (eom.decision !== 'accept' || m.tooBig || !sameHeaderActions(st.headers, eom)) {
      st.pipe.fail(`end of message: ${eom.decision}`);
      await st.delivery;
      if (eom.decision === 'accept') return local(m.tooBig ? 'messageTooLarge' : 'internal');
      return decisionOutcome(eom);
    }
    st.pipe.end();
    const up = await st.delivery;
    if (up.code >= 200 && up.code < 300) {
      await this.s.messageAccepted();
      return decisionOutcome(eom);
    }
    return { reply: mirrorUpstream(up), close: false };
  }

  /** End of headers: the policy, then the next hop's DATA with the rewritten header block. */
  private async startMessage(block: HeaderBlock): Promise<Started | Outcome> {
    // The engine counts the empty line that ends the block (RFC 5322 §2.1) in header_size.
    const d = await this.s.headers(headerFacts(block), block.raw.length + 2);
    if (d.decision !== 'continue') return decisionOutcome(d);
    if (this.relayed === null) return local('internal');
    this.transactions++;
    const received = receivedField({
      helo: this.heloName,
      esmtp: this.esmtp,
      clientIp: this.conn.remote.ip,
      ...(this.s.tlsActive ? { tls: this.tlsFacts() } : {}),
      ...(this.s.user === null ? {} : { user: this.s.user }),
      by: this.ctx.spec.fqdn,
      id: `${this.conn.id}.${this.transactions}`,
      recipients: this.recipients,
      date: (this.ctx.now ?? (() => new Date()))(),
    });
    let header: Buffer;
    try {
      header = rewriteHeader(block, d.remove_headers, received + addedFields(d.add_headers));
    } catch {
      return local('internal');
    }
    const pipe = new MessagePipe();
    const delivery = this.relayed.data(pipe).catch((e: unknown): UpstreamReply => ({ code: 451, enhanced: '4.3.0', text: 'Internal error', lines: [], source: 'local', detail: String(e) }));
    await pipe.push(header);
    return { pipe, delivery, headers: d };
  }

  /** TLS facts for the Received: header. */
  private tlsFacts(): { version?: string; cipher?: string } {
    const t = this.tlsState;
    return { ...(t.version === undefined ? {} : { version: t.version }), ...(t.cipher === undefined ? {} : { cipher: t.cipher }) };
  }

  /** The connection closed: release the engine session and the next hop. */
  async close(): Promise<void> {
    const r = this.relayed;
    this.relayed = null;
    this.relayOpen = false;
    await this.s.close();
    await r?.close().catch(() => undefined);
  }
}

interface Started {
  readonly pipe: MessagePipe;
  readonly delivery: Promise<UpstreamReply>;
  readonly headers: MessageDecision<'headers'>;
}

/** The end-of-message decision must apply what the header block was rewritten with. */
function sameHeaderActions(h: MessageDecision<'headers'>, e: MessageDecision<'eom'>): boolean {
  return JSON.stringify([h.remove_headers, h.add_headers]) === JSON.stringify([e.remove_headers, e.add_headers]);
}

/** The MAIL parameters the next hop gets (where it supports them). */
function mailParams(args: Readonly<Record<string, string | boolean>>): MailParams {
  const size = typeof args['SIZE'] === 'string' && /^\d{1,15}$/.test(args['SIZE']) ? Number(args['SIZE']) : undefined;
  const body = typeof args['BODY'] === 'string' ? args['BODY'].toUpperCase() : undefined;
  return {
    ...(size === undefined ? {} : { size }),
    ...(body === '8BITMIME' || body === '7BIT' ? { body } : {}),
    ...(args['SMTPUTF8'] === true ? { smtpUtf8: true } : {}),
  };
}
