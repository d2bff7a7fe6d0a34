import { performance } from 'node:perf_hooks';
import type { CachedSession, Snapshot } from './engine.js';
import { EngineError } from './errors.js';
import { rateKeys as rateKeysFor, SessionCounting } from './session-counters.js';
import { authInput, mailJson, messageSummary, parseConnection, SessionInput, tlsInput, withMessageSize, type ConnectionInput, type MessageSummary } from './input.js';
import type { SessionEnv, SessionInit, SessionOptions } from './session-types.js';
import type { AuthFacts, Decision, DecisionFor, Facts, HeaderFacts, MailFacts, Stage, TlsFacts } from './types.js';

/**
 * One SMTP connection as the engine sees it: a pure object (no sockets) that builds the facts
 * of each stage, asks the policy, and carries what SMTP carries from stage to stage — the
 * connector, TLS, a successful AUTH, the transaction and its accepted recipients — counting
 * logon failures and messages on the way. Every adapter and `mta-policy test` drive it.
 *
 * Rules (RFC 5321 / 3207 / 4954 and Exchange):
 * - CONNECT first; nothing else before it continues. After a `disconnect` decision (a refusal
 *   out of sequence included) every call is refused: the adapter closes the connection and
 *   calls `close()`. A `close()` while CONNECT still waits for the counter store releases the
 *   connection count once the store answers.
 * - EHLO/HELO and RSET end the transaction; STARTTLS discards the EHLO name, any AUTH and the
 *   transaction (RFC 3207 §4.2).
 * - AUTH counts only when its decision is `continue`; a failed logon is counted, and the
 *   policy disconnects after the connector's max_logon_failures (Exchange: per connection).
 *   AUTH happens once and never during a transaction (RFC 4954 §4), whoever ran it: an MTA
 *   reporting AUTH then, or another login, is refused (`mtaAuthenticated` answers false).
 * - The message rate is counted per the connector's message_rate_source; per user means per
 *   identity (every login name of one user shares a bucket), per login for a login without one.
 * - MAIL opens a transaction only when it continues; RCPT counts accepted recipients; end of
 *   headers needs one; end of headers (unless it continues) and end of message end it.
 * - A `discard` at MAIL, RCPT or end of headers opens or keeps the transaction as for
 *   `continue` (the client was told 2xx and goes on) and marks it discarded: the message is
 *   dropped as a whole, as a milter's SMFIR_DISCARD and Postfix's DISCARD drop it for every
 *   recipient. Later stages are still decided (a refusal stays a refusal), and a `continue` or
 *   `accept` of a discarded transaction answers `discard` with the discarding reason.
 * - The engine, never the adapter, computes the session document; it is evaluated once per
 *   (endpoints, TLS, AUTH) state.
 * - Methods never throw. A call out of sequence, bad facts, a counter store that fails, or an
 *   engine failure all answer a tempfail decision with `error` set — never an accept.
 */

export type { SessionEnv, SessionInit, SessionOptions } from './session-types.js';

interface Transaction {
  readonly mailFrom: string;
  readonly params: MailFacts['mail_params'];
  readonly mail: string;
  readonly rateKeys: readonly string[];
  accepted: number;
  /** The reason of the decision that discarded the message, once one did. */
  discarded?: string;
  message?: { readonly headers: HeaderFacts; readonly summary: MessageSummary; readonly headerSize?: number };
}

type Phase = 'new' | 'open' | 'refused' | 'closed';

export class Session {
  private phase: Phase = 'new';
  private tls: TlsFacts | null;
  private heloName: string | undefined;
  private authFacts: AuthFacts | null = null;
  private failures = 0;
  private accepted = 0;
  private tx: Transaction | null = null;
  private connection: ConnectionInput | null = null;
  private input: SessionInput | null = null;
  private cached: CachedSession | null = null;
  private connectorName: string | null = null;

  constructor(
    private readonly snap: Snapshot,
    private readonly env: SessionEnv,
    private readonly init: SessionInit,
    private readonly options: SessionOptions = {},
  ) {
    this.tls = init.tls ?? null;
    this.counting = new SessionCounting(options.counters ?? env.counters, (what, e) => env.fault(what, e, options.logBindings ?? {}));
    this.failures = options.logonFailures ?? 0;
  }

  private readonly counting: SessionCounting;

  /** The connector CONNECT selected (null before, or when none matched). */
  get connector(): string | null {
    return this.connectorName;
  }

  /** The login of the successful AUTH, if any. */
  get user(): string | null {
    return this.authFacts?.user ?? null;
  }

  get tlsActive(): boolean {
    return this.tls !== null;
  }

  /** Failed logons so far on this connection. */
  get logonFailures(): number {
    return this.failures;
  }

  /** Recipients accepted in the open transaction (0 when none is open). */
  get acceptedRecipients(): number {
    return this.tx?.accepted ?? 0;
  }

  get inTransaction(): boolean {
    return this.tx !== null;
  }

  /** Messages the adapter reported delivered on this connection. */
  get messages(): number {
    return this.accepted;
  }

  /** CONNECT: selects the connector and counts the connection. */
  async connect(): Promise<DecisionFor<'connect'>> {
    if (this.phase !== 'new') return this.sequence('connect', 'CONNECT was already decided');
    this.phase = 'open';
    return this.run('connect', async () => {
      const input = this.sessionInput();
      // The connector is needed before the CONNECT decision, to count the connection on it.
      this.connectorName = this.document(input).doc.connector;
      const counters: Record<string, number> = {};
      if (this.connectorName !== null) {
        const counts = await this.counting.open({ connector: this.connectorName, source: input.connection.remote.ip });
        if (counts === null) throw new EngineError('ENGINE_SESSION_SEQUENCE', 'connect: the session closed before CONNECT was decided');
        counters['connections_total'] = counts.total;
        counters['connections_from_source'] = counts.fromSource;
      }
      return this.evaluate('connect', { ...this.base(), counters });
    }, (d) => {
      if (d.decision !== 'continue') this.refuse();
    });
  }

  /** EHLO or HELO with its argument ('' for none). Ends any transaction. */
  async helo(name: string): Promise<DecisionFor<'ehlo'>> {
    if (this.phase !== 'open') return this.sequence('ehlo', this.why());
    this.tx = null;
    this.heloName = name;
    return this.run('ehlo', () => this.evaluate('ehlo', { ...this.base(), helo: name }), (d) => this.after(d));
  }

  /**
   * TLS is now active (after STARTTLS, or an MTA reporting it): the client must greet again,
   * and anything learnt in cleartext — the EHLO name, an AUTH, a transaction — is discarded.
   */
  starttls(tls: TlsFacts = {}): void {
    this.tls = tls;
    this.heloName = undefined;
    this.authFacts = null;
    this.tx = null;
    this.reset();
  }

  /** AUTH whose credentials mta-policy checked (`result`); the session is authenticated only on `continue`. */
  async auth(attempt: AuthFacts): Promise<DecisionFor<'auth'>> {
    if (this.phase !== 'open') return this.sequence('auth', this.why());
    if (this.authFacts !== null) return this.sequence('auth', 'the session is already authenticated (RFC 4954 §4: AUTH once)');
    if (this.tx !== null) return this.sequence('auth', 'AUTH is not permitted during a mail transaction (RFC 4954 §4)');
    return this.run('auth', () => {
      const facts = { ...this.base(), auth: attempt, counters: { logon_failures: this.failures } };
      const input = new SessionInput(this.sessionInput().connection, tlsInput(this.tls), authInput(attempt));
      return this.snap.evaluate('auth', facts, input, this.snap.cache ? this.snap.sessionDoc(input) : null, this.env.nextId(), false) as DecisionFor<'auth'>;
    }, (d) => {
      if (d.logon_failure) this.failures++;
      if (d.decision === 'continue') {
        this.authFacts = { mechanism: attempt.mechanism, user: attempt.user, result: 'success' };
        this.reset();
      }
      this.after(d);
    });
  }

  /**
   * The MTA (milter, policy service) authenticated the client as `user` with `mechanism`, over
   * the TLS state this session knows. The policy decides at MAIL what that is worth (BasicAuth
   * on, and TLS where BasicAuthRequireTLS); mta-policy never saw the credentials.
   */
  /**
   * Returns whether the session took it. Reporting the same AUTH again (a milter sees the AUTH
   * macros with every MAIL, a policy service with every request) is a no-op; it is refused —
   * the session stays as it was — during a transaction, after another AUTH (mta-policy's own,
   * or another login: RFC 4954 §4 allows one AUTH per session), or once the session is refused
   * or closed. A refused report is logged.
   */
  mtaAuthenticated(auth: { readonly mechanism: string; readonly user: string }): boolean {
    const a = this.authFacts;
    if (a !== null && a.by_mta === true && a.user === auth.user && a.mechanism === auth.mechanism) return true;
    const why =
      this.phase === 'refused' || this.phase === 'closed'
        ? this.why()
        : a !== null
          ? 'the session is already authenticated (RFC 4954 §4: AUTH once)'
          : this.tx !== null
            ? 'AUTH is not permitted during a mail transaction (RFC 4954 §4)'
            : null;
    if (why !== null) {
      this.env.fault('mta auth refused', new EngineError('ENGINE_SESSION_SEQUENCE', `mta auth: ${why}`), this.options.logBindings ?? {});
      return false;
    }
    this.authFacts = { mechanism: auth.mechanism, user: auth.user, result: 'success', by_mta: true };
    this.reset();
    return true;
  }

  /** MAIL FROM; opens a transaction when it continues. */
  async mail(from: string, params?: MailFacts['mail_params']): Promise<DecisionFor<'mail'>> {
    if (this.phase !== 'open') return this.sequence('mail', this.why());
    if (this.tx !== null) return this.sequence('mail', 'a transaction is already open (RFC 5321 §4.1.4: RSET first)');
    let tx: Transaction | undefined;
    return this.run('mail', async () => {
      const mail = mailJson(from, params);
      const input = this.sessionInput();
      const rateKeys = rateKeysFor(this.snap.connector(this.connectorName), input.connection.remote.ip, this.document(input).doc);
      const last = await this.counting.lastMinute(rateKeys);
      tx = { mailFrom: from, params, mail, rateKeys, accepted: 0 };
      return this.evaluate('mail', { ...this.mailFacts(from, params), counters: { messages_last_minute: last } }, { mail });
    }, (d) => {
      if ((d.decision === 'continue' || d.decision === 'discard') && tx !== undefined) {
        if (d.decision === 'discard') tx.discarded = d.reason;
        this.tx = tx;
      }
      this.after(d);
    }, () => tx);
  }

  /** RCPT TO; an accepted recipient is counted. */
  async rcpt(to: string): Promise<DecisionFor<'rcpt'>> {
    const tx = this.tx;
    if (this.phase !== 'open' || tx === null) return this.sequence('rcpt', this.phase !== 'open' ? this.why() : 'RCPT before MAIL (RFC 5321 §4.1.4)');
    return this.run('rcpt', () => this.evaluate('rcpt', { ...this.mailFacts(tx.mailFrom, tx.params), rcpt_to: to, accepted_rcpt_count: tx.accepted }, { mail: tx.mail }), (d) => {
      if (d.decision === 'continue' || d.decision === 'discard') tx.accepted++;
      if (d.decision === 'discard') tx.discarded ??= d.reason;
      this.after(d);
    }, () => tx);
  }

  /** End of headers: the header block in message order, and its size in bytes when known. */
  async headers(headers: HeaderFacts, headerSize?: number): Promise<DecisionFor<'headers'>> {
    const tx = this.tx;
    if (this.phase !== 'open' || tx === null || tx.accepted === 0) {
      return this.sequence('headers', this.phase !== 'open' ? this.why() : 'end of headers without an accepted recipient');
    }
    return this.run('headers', () => {
      const summary = messageSummary(headers, headerSize, undefined, false);
      tx.message = headerSize === undefined ? { headers, summary } : { headers, summary, headerSize };
      const facts = { ...this.mailFacts(tx.mailFrom, tx.params), accepted_rcpt_count: tx.accepted, headers, ...(headerSize === undefined ? {} : { header_size: headerSize }) };
      return this.evaluate('headers', facts, { mail: tx.mail, message: summary });
    }, (d) => {
      if (d.decision === 'discard') tx.discarded ??= d.reason;
      else if (d.decision !== 'continue') this.tx = null;
      this.after(d);
    }, () => tx);
  }

  /** End of message with its size in bytes (header and body); ends the transaction. */
  async eom(messageSize: number): Promise<DecisionFor<'eom'>> {
    const tx = this.tx;
    const message = tx?.message;
    if (this.phase !== 'open' || tx === null || message === undefined) {
      return this.sequence('eom', this.phase !== 'open' ? this.why() : 'end of message before end of headers');
    }
    this.tx = null;
    this.counting.awaitDelivery(null);
    return this.run('eom', () => {
      const facts = {
        ...this.mailFacts(tx.mailFrom, tx.params),
        accepted_rcpt_count: tx.accepted,
        headers: message.headers,
        message_size: messageSize,
        ...(message.headerSize === undefined ? {} : { header_size: message.headerSize }),
      };
      return this.evaluate('eom', facts, { mail: tx.mail, message: withMessageSize(message.summary, messageSize) });
    }, (d) => {
      // A discarded message was never delivered: it does not count towards the message rate.
      if (d.decision === 'accept') this.counting.awaitDelivery(tx.rateKeys);
      this.after(d);
    }, () => tx);
  }

  /**
   * The message the last end-of-message decision accepted was delivered (the next hop or the
   * MTA took it): it counts towards the message rate. Call it once per accepted message.
   */
  async messageAccepted(): Promise<void> {
    if (await this.counting.delivered()) this.accepted++;
  }

  /** RSET (or the MTA aborting a message): the transaction ends. */
  rset(): void {
    this.tx = null;
  }

  /** The connection closed. Idempotent; releases the connection count. */
  async close(): Promise<void> {
    this.phase = 'closed';
    this.tx = null;
    await this.counting.close();
  }

  // --- internals -------------------------------------------------------------------------------

  private base(): Facts {
    return { local: this.init.local, remote: this.init.remote, ...(this.tls === null ? {} : { tls: this.tls }), ...(this.authFacts === null ? {} : { auth: this.authFacts }) };
  }

  private mailFacts(from: string, params: MailFacts['mail_params']): Facts {
    return { ...this.base(), ...(this.heloName === undefined ? {} : { helo: this.heloName }), mail_from: from, ...(params === undefined ? {} : { mail_params: params }) };
  }

  /** The session's restricted input for its current endpoints, TLS and AUTH. */
  private sessionInput(): SessionInput {
    if (this.input === null) {
      this.connection ??= parseConnection(this.init.local, this.init.remote);
      this.input = SessionInput.of(this.connection, tlsInput(this.tls), authInput(this.authFacts));
    }
    return this.input;
  }

  /** The session document for the current state (also in inline mode, for what the session itself needs). */
  private document(input: SessionInput): CachedSession {
    if (this.cached === null) this.cached = this.snap.sessionDoc(input);
    return this.cached;
  }

  /** The document a stage is given: none in inline mode, where the Rego computes it. */
  private sessionDoc(input: SessionInput): CachedSession | null {
    return this.snap.cache ? this.document(input) : null;
  }

  /** TLS or AUTH changed: the session document must be computed afresh. */
  private reset(): void {
    this.input = null;
    this.cached = null;
  }

  private evaluate<S extends Stage>(stage: S, facts: Facts, parts = {}): DecisionFor<S> {
    const input = this.sessionInput();
    return this.snap.evaluate(stage, facts, input, this.sessionDoc(input), this.env.nextId(), false, parts) as DecisionFor<S>;
  }

  /**
   * Run one stage: time it, turn any failure into the fail-safe tempfail, turn a pass of a
   * discarded transaction into `discard`, log it, apply its effect.
   */
  private async run<S extends Stage>(
    stage: S,
    decide: () => DecisionFor<S> | Promise<DecisionFor<S>>,
    effect: (d: DecisionFor<S>) => void,
    transaction: () => Transaction | null | undefined = () => null,
  ): Promise<DecisionFor<S>> {
    const t0 = this.env.timed ? performance.now() : 0;
    let d: DecisionFor<S>;
    try {
      d = await decide();
    } catch (e) {
      d = this.snap.failSafe(this.env.nextId(), stage, e, this.connectorName) as DecisionFor<S>;
    }
    const discarded = transaction()?.discarded;
    if (discarded !== undefined && (d.decision === 'continue' || d.decision === 'accept')) d = { ...d, decision: 'discard', reason: discarded };
    effect(d);
    this.env.log(d, t0, this.options.logBindings ?? {});
    return d;
  }

  private after(d: Decision): void {
    if (d.decision === 'disconnect') this.refuse();
  }

  /** No call continues after a disconnect (a closed session stays closed). */
  private refuse(): void {
    if (this.phase !== 'closed') this.phase = 'refused';
    this.tx = null;
  }

  private why(): string {
    return this.phase === 'new' ? 'CONNECT has not been decided' : this.phase === 'refused' ? 'the session was refused or disconnected' : 'the session is closed';
  }

  /** A call out of sequence: the fail-safe tempfail (disconnect at CONNECT), with its effect. */
  private sequence<S extends Stage>(stage: S, why: string): DecisionFor<S> {
    const t0 = this.env.timed ? performance.now() : 0;
    const d = this.snap.failSafe(this.env.nextId(), stage, new EngineError('ENGINE_SESSION_SEQUENCE', `${stage}: ${why}`), this.connectorName) as DecisionFor<S>;
    this.after(d);
    this.env.log(d, t0, this.options.logBindings ?? {});
    return d;
  }
}
