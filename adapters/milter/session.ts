/**
 * The socket-free milter session (adapters/spec/milter-v6.md §7): decoded commands in, replies
 * out, one injected handler per SMTP connection. Invariants:
 *
 * - Exactly one verdict for every command that expects one; none for MACRO, ABORT, QUIT,
 *   QUIT_NC and events negotiated as NR_*. Modifications only at end of message.
 * - A handler failure (throw, rejection, deadline, invalid verdict) is SMFIR_TEMPFAIL, never
 *   accept or continue. At an NR_* event, where nothing can be replied, it poisons the rest of
 *   the message (or, at CONNECT/HELO, the SMTP connection) with tempfail.
 * - Verdicts that end a message or connection (libmilter, Postfix milter8 REJECT_CON /
 *   ACCEPT_MSG) are final: should the MTA still send commands they are answered with the same
 *   verdict, without calling the handler.
 * - Lenient where the MTAs are irregular but harmless (§5 traces): empty and unknown-stage macro
 *   packets, ABORT outside a message and twice in a row (Postfix), a new MAIL without ABORT
 *   (Sendmail), HELO again (STARTTLS), UNKNOWN anywhere. A MAIL or HELO inside an open message
 *   aborts it first, as libmilter does.
 * - Strict where a reply could desynchronise the MTA: anything before OPTNEG, a second OPTNEG,
 *   a second CONNECT without QUIT_NC, message commands out of order, anything after QUIT → a
 *   `MILTER_SEQUENCE` error that closes this one connection.
 */
import type { MilterCommand, OptNeg } from './commands.js';
import { DEFAULT_MAX_FRAME_LENGTH } from './codec.js';
import { SMFIC_CONNECT, SMFIC_HELO, SMFIC_MAIL, SMFIC_RCPT, commandName } from './constants.js';
import { MilterProtocolError, MilterUsageError } from './errors.js';
import { CLEARED_BY, MESSAGE_STAGES, MacroStore, type Macros } from './macros.js';
import { negotiate, optnegReply, type MilterEvent, type MilterNeeds, type Negotiated } from './negotiate.js';
import type { MilterReply } from './replies.js';
import { settleWithin } from '../shared/deadline.js';
import { DEFAULT_HANDLER_TIMEOUT_MS, DEFAULT_MAX_MACRO_BYTES, type Awaitable, type ConnectInfo, type EomResult, type MilterAction, type MilterHandler, type MilterLogger, type SessionOptions, type SessionStep } from './types.js';
import { actionReplies, modificationReplies, type VerdictStage } from './verdicts.js';

export { DEFAULT_HANDLER_TIMEOUT_MS, DEFAULT_MAX_MACRO_BYTES, type SessionOptions, type SessionStep } from './types.js';

type Message = { readonly state: 'idle' } | { readonly state: 'open'; readonly rank: number } | { readonly state: 'decided'; readonly replies: readonly MilterReply[] };

/** Position of each message event in a transaction; equal ranks may repeat where marked. */
const RANK: Readonly<Record<'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'eom', number>> = { mail: 1, rcpt: 2, data: 3, header: 4, eoh: 5, body: 6, eom: 7 };
const REPEATABLE = new Set([RANK.rcpt, RANK.header, RANK.body]);
const RANKED_EVENTS: readonly MilterEvent[] = ['mail', 'rcpt', 'data', 'header', 'eoh', 'body'];

const CONTINUE: readonly MilterReply[] = [{ kind: 'continue' }];
const TEMPFAIL: readonly MilterReply[] = [{ kind: 'tempfail' }];
const NONE: SessionStep = { replies: [], close: false };

type Invoked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: MilterUsageError };

/** One milter connection's protocol state machine. `handle` calls are serialised internally. */
export class MilterSession {
  private readonly opts: SessionOptions;
  private readonly log: MilterLogger;
  private readonly timeoutMs: number;
  private readonly macros: MacroStore;
  private phase: 'optneg' | 'ready' | 'closed' = 'optneg';
  private n: Negotiated | undefined;
  private handler: MilterHandler | undefined;
  private smtpConnection = 0;
  private connectSeen = false;
  private connVerdict: readonly MilterReply[] | undefined;
  private msg: Message = { state: 'idle' };
  private bodySkipped = false;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.timeoutMs = opts.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
    this.macros = new MacroStore(opts.maxMacroBytes ?? DEFAULT_MAX_MACRO_BYTES);
  }

  /** The negotiation outcome, once OPTNEG has been answered. */
  get negotiated(): Negotiated | undefined {
    return this.n;
  }

  /** True after QUIT, a protocol error or {@link end}. */
  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** Process one command. Never rejects: failures are in the returned step. */
  handle(cmd: MilterCommand): Promise<SessionStep> {
    const run = this.tail.then(() => this.step(cmd));
    this.tail = run.catch(() => undefined);
    return run.then(
      (s) => s,
      (e: unknown) => {
        // Unreachable by design (every path catches); fail closed all the same.
        this.log.error({ err: e, code: 'MILTER_INTERNAL' }, 'milter session failed unexpectedly');
        return this.fail(new MilterProtocolError('MILTER_SEQUENCE', 'internal session failure', { cause: e }));
      },
    );
  }

  /** The connection ended (EOF, error, timeout, shutdown): abort an open message, close the handler. */
  end(): Promise<void> {
    const run = this.tail.then(() => this.finish());
    this.tail = run.catch(() => undefined);
    return run.catch(() => undefined);
  }

  private async finish(): Promise<void> {
    if (this.phase === 'closed' && this.handler === undefined) return;
    this.phase = 'closed';
    await this.endSmtpConnection();
  }

  private async fail(error: MilterProtocolError): Promise<SessionStep> {
    this.phase = 'closed';
    await this.endSmtpConnection();
    return { replies: [], close: true, error };
  }

  private sequence(cmd: MilterCommand, why: string): Promise<SessionStep> {
    return this.fail(new MilterProtocolError('MILTER_SEQUENCE', `${cmd.kind}: ${why}`));
  }

  private async step(cmd: MilterCommand): Promise<SessionStep> {
    if (this.phase === 'closed') return { replies: [], close: true, error: new MilterProtocolError('MILTER_SEQUENCE', `${cmd.kind} after the session ended`) };
    if (this.phase === 'optneg') {
      if (cmd.kind !== 'optneg') return this.sequence(cmd, 'the MTA must open with OPTNEG');
      return this.optneg(cmd);
    }
    const n = this.n as Negotiated;
    switch (cmd.kind) {
      case 'optneg':
        return this.sequence(cmd, 'second OPTNEG on one connection');
      case 'macro': {
        const r = this.macros.define(cmd.stage, cmd.macros);
        if (r instanceof MilterProtocolError) return this.fail(r);
        if (r === 'ignored') this.log.debug({ stage: commandName(cmd.stage) }, 'ignoring macros for an unknown stage');
        return NONE;
      }
      case 'abort':
        await this.abortMessage();
        return NONE;
      case 'quit':
        this.phase = 'closed';
        await this.endSmtpConnection();
        return { replies: [], close: true };
      case 'quitNc':
        await this.endSmtpConnection();
        return NONE;
      case 'connect': {
        if (this.connectSeen) return this.sequence(cmd, 'second CONNECT without QUIT_NC');
        this.connectSeen = true;
        this.macros.clear(CLEARED_BY.get(SMFIC_CONNECT) ?? []);
        const info: ConnectInfo =
          cmd.family === 'unix'
            ? { hostname: cmd.hostname, family: cmd.family, ...(cmd.address === undefined ? {} : { path: cmd.address }) }
            : { hostname: cmd.hostname, family: cmd.family, ...(cmd.address === undefined ? {} : { address: cmd.address }), ...(cmd.port === undefined ? {} : { port: cmd.port }) };
        return this.event('connect', (h, m) => h.connect(info, m));
      }
      case 'unknown':
        return this.event('unknown', (h, m) => (h.unknown === undefined ? { kind: 'continue' } : h.unknown(cmd.command, m)));
      default:
        break;
    }
    if (!this.connectSeen) {
      if (!n.suppressed.has('connect')) return this.sequence(cmd, 'before CONNECT');
      this.connectSeen = true;
    }
    switch (cmd.kind) {
      case 'helo':
        await this.leaveMessage();
        this.macros.clear(CLEARED_BY.get(SMFIC_HELO) ?? []);
        return this.event('helo', (h, m) => h.helo(cmd.name, m));
      case 'mail':
        await this.leaveMessage(SMFIC_MAIL);
        this.macros.clear(CLEARED_BY.get(SMFIC_MAIL) ?? []);
        return this.messageEvent(cmd, 'mail', (h, m) => h.mail(cmd.args, m));
      case 'rcpt':
        this.macros.clear(CLEARED_BY.get(SMFIC_RCPT) ?? []);
        return this.messageEvent(cmd, 'rcpt', (h, m) => h.rcpt(cmd.args, m));
      case 'data':
        return this.messageEvent(cmd, 'data', (h, m) => h.data(m));
      case 'header': {
        // Without HDR_LEADSPC the MTA already removed one space (not tab) after the colon.
        const value = n.headerLeadingSpace && cmd.value.startsWith(' ') ? cmd.value.slice(1) : cmd.value;
        return this.messageEvent(cmd, 'header', (h, m) => h.header(cmd.name, value, m));
      }
      case 'eoh':
        return this.messageEvent(cmd, 'eoh', (h, m) => h.eoh(m));
      case 'body':
        return this.messageEvent(cmd, 'body', (h, m) => h.body(cmd.chunk, m));
      case 'eom':
        return this.eom(cmd);
    }
  }

  private async optneg(offer: OptNeg): Promise<SessionStep> {
    let needs: MilterNeeds;
    let result: Negotiated | MilterProtocolError;
    try {
      needs = typeof this.opts.needs === 'function' ? this.opts.needs(offer) : (this.opts.needs ?? {});
      result = negotiate(offer, needs, this.opts.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH);
    } catch (e) {
      this.log.error({ err: e, code: e instanceof MilterUsageError ? e.code : 'MILTER_OPTION_INVALID' }, 'invalid milter negotiation settings');
      return this.fail(new MilterProtocolError('MILTER_NEGOTIATION', 'invalid negotiation settings', { cause: e }));
    }
    if (result instanceof MilterProtocolError) return this.fail(result);
    this.n = result;
    this.phase = 'ready';
    this.log.debug({ version: result.version, actions: result.actions, protocol: result.protocol, macroLists: result.macroListsSent }, 'milter negotiated');
    return { replies: [optnegReply(result)], close: false };
  }

  /** Check the transaction order for a message command and open a message where it may start. */
  private async messageEvent(cmd: MilterCommand, ev: 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body', call: (h: MilterHandler, m: Macros) => Awaitable<MilterAction>): Promise<SessionStep> {
    const bad = this.enterRank(RANK[ev]);
    if (bad !== undefined) return this.sequence(cmd, bad);
    return this.event(ev, call);
  }

  private enterRank(rank: number): string | undefined {
    const m = this.msg;
    if (m.state === 'decided') return undefined;
    if (m.state === 'open') {
      if (rank > m.rank || (rank === m.rank && REPEATABLE.has(rank))) {
        this.msg = { state: 'open', rank };
        return undefined;
      }
      return `out of order in a message (after ${rankName(m.rank)})`;
    }
    // idle: a message starts at MAIL, or later where every earlier event was switched off.
    const n = this.n as Negotiated;
    const earlier = RANKED_EVENTS.slice(0, rank - 1);
    if (rank === RANK.mail || earlier.every((e) => n.suppressed.has(e))) {
      this.msg = { state: 'open', rank };
      this.bodySkipped = false;
      return undefined;
    }
    return 'outside a message';
  }

  private async eom(cmd: Extract<MilterCommand, { kind: 'eom' }>): Promise<SessionStep> {
    const bad = this.enterRank(RANK.eom);
    if (bad !== undefined) return this.sequence(cmd, bad);
    const n = this.n as Negotiated;
    if (this.connVerdict !== undefined) return this.complete(this.connVerdict);
    if (this.msg.state === 'decided') return this.complete(this.msg.replies);
    // libmilter st_bodyend: data on BODYEOB is one last body chunk; a non-continue ends here.
    if (cmd.chunk.length > 0 && n.wanted.has('body') && !this.bodySkipped) {
      const r = await this.verdict('body', (h, m) => h.body(cmd.chunk, m));
      if (r.replies.length !== 1 || (r.replies[0]?.kind !== 'continue' && r.replies[0]?.kind !== 'skip')) return this.complete(r.replies);
    }
    const handler = this.ensureHandler();
    const view = this.macros.view();
    const got = await this.invoke('eom', () => handler.eom(view));
    let replies: readonly MilterReply[];
    if (!got.ok) replies = this.failed('eom', got.error);
    else {
      try {
        const res: EomResult = got.value;
        replies = [...modificationReplies(res.modifications ?? [], n), ...actionReplies('eom', res.action, n)];
      } catch (e) {
        replies = this.failed('eom', asUsage(e));
      }
    }
    return this.complete(replies);
  }

  private complete(replies: readonly MilterReply[]): SessionStep {
    this.msg = { state: 'idle' };
    this.bodySkipped = false;
    return { replies, close: false };
  }

  /** Dispatch an event to the handler (or answer it without one) and apply its verdict. */
  private async event(ev: MilterEvent, call: (h: MilterHandler, m: Macros) => Awaitable<MilterAction>): Promise<SessionStep> {
    const n = this.n as Negotiated;
    const expect = !n.noReply.has(ev);
    const isMessage = ev !== 'connect' && ev !== 'helo' && ev !== 'unknown';
    const repeat = this.connVerdict ?? (isMessage && this.msg.state === 'decided' ? this.msg.replies : undefined);
    if (repeat !== undefined) return { replies: expect ? repeat : [], close: false };
    if (!n.wanted.has(ev) || (ev === 'body' && this.bodySkipped)) return { replies: expect ? CONTINUE : [], close: false };
    const r = await this.verdict(ev, call);
    if (!expect) {
      // Nothing can be sent. An accept is carried on as continue (stricter, never weaker);
      // a refusal or failure poisons the rest of its scope.
      const kind = r.failed ? undefined : r.action?.kind;
      if (kind === 'skip' && ev === 'body') this.bodySkipped = true;
      else if (kind === 'accept') this.log.warn({ code: 'MILTER_NOREPLY_VIOLATED', event: ev }, 'handler accepted at a no-reply stage; carrying on as continue');
      else if (kind !== 'continue' && kind !== 'skip') {
        if (!r.failed) this.log.error({ code: 'MILTER_NOREPLY_VIOLATED', event: ev, verdict: kind }, 'handler refused at a no-reply stage; failing the rest with tempfail');
        this.poison(ev);
      }
      return NONE;
    }
    this.apply(ev, r.action, r.replies, r.failed);
    return { replies: r.replies, close: false };
  }

  private async verdict(ev: VerdictStage, call: (h: MilterHandler, m: Macros) => Awaitable<MilterAction>): Promise<{ replies: readonly MilterReply[]; action: MilterAction | undefined; failed: boolean }> {
    const n = this.n as Negotiated;
    const handler = this.ensureHandler();
    const view = this.macros.view();
    const got = await this.invoke(ev, () => call(handler, view));
    if (!got.ok) return { replies: this.failed(ev, got.error), action: undefined, failed: true };
    try {
      return { replies: actionReplies(ev, got.value, n), action: got.value, failed: false };
    } catch (e) {
      return { replies: this.failed(ev, asUsage(e)), action: undefined, failed: true };
    }
  }

  /** Record what a verdict decided (connection-final, message-final, body skipped). */
  private apply(ev: MilterEvent, action: MilterAction | undefined, replies: readonly MilterReply[], failed: boolean): void {
    const kind = failed ? 'tempfail' : (action?.kind ?? 'tempfail');
    if (ev === 'connect' || ev === 'helo') {
      if (kind === 'accept' || kind === 'reject' || kind === 'tempfail') this.connVerdict = replies;
      return;
    }
    if (ev === 'unknown') return;
    if (ev === 'body' && kind === 'skip') {
      this.bodySkipped = true;
      return;
    }
    const final = ev === 'rcpt' ? kind === 'accept' || kind === 'discard' : kind !== 'continue';
    if (final && this.msg.state === 'open') this.msg = { state: 'decided', replies };
  }

  /** A failure where no reply can be sent: tempfail whatever comes next in the same scope. */
  private poison(ev: MilterEvent): void {
    if (ev === 'connect' || ev === 'helo') this.connVerdict = TEMPFAIL;
    else if (this.msg.state === 'open') this.msg = { state: 'decided', replies: TEMPFAIL };
  }

  private failed(ev: VerdictStage, error: MilterUsageError): readonly MilterReply[] {
    this.log.error({ code: error.code, event: ev, err: error.cause ?? error }, `milter ${ev}: ${error.message}; replying tempfail`);
    return TEMPFAIL;
  }

  private ensureHandler(): MilterHandler {
    if (this.handler === undefined) {
      this.smtpConnection += 1;
      this.handler = this.opts.createHandler({ negotiated: this.n as Negotiated, logger: this.log, connection: this.opts.connectionId ?? 0, smtpConnection: this.smtpConnection });
    }
    return this.handler;
  }

  private async invoke<T>(what: string, fn: () => Awaitable<T>): Promise<Invoked<T>> {
    try {
      const r = await settleWithin(Promise.resolve().then(fn), this.timeoutMs);
      if (r.late) return { ok: false, error: new MilterUsageError('MILTER_HANDLER_FAILED', `handler ${what} did not settle within ${this.timeoutMs} ms`) };
      return { ok: true, value: r.value };
    } catch (e) {
      if (e instanceof MilterUsageError && e.code === 'MILTER_HANDLER_FAILED') return { ok: false, error: e };
      return { ok: false, error: new MilterUsageError('MILTER_HANDLER_FAILED', `handler ${what} failed`, { cause: e }) };
    }
  }

  /** ABORT: an open message is abandoned; outside one (Postfix sends it after every message, sometimes twice) nothing happens. */
  private async abortMessage(keep?: number): Promise<void> {
    const wasOpen = this.msg.state === 'open';
    this.msg = { state: 'idle' };
    this.bodySkipped = false;
    this.macros.clear(MESSAGE_STAGES.filter((s) => s !== keep));
    if (wasOpen && this.handler !== undefined) {
      const h = this.handler;
      const r = await this.invoke('abort', () => h.abort());
      if (!r.ok) this.log.error({ code: r.error.code, event: 'abort', err: r.error.cause ?? r.error }, 'milter handler abort failed');
    }
  }

  /**
   * MAIL or HELO while a message is open aborts it (libmilter calls xxfi_abort on such a
   * transition). `keep`: the stage whose macros just arrived for the command that caused it.
   */
  private async leaveMessage(keep?: number): Promise<void> {
    if (this.msg.state === 'open') await this.abortMessage(keep);
    this.msg = { state: 'idle' };
  }

  /** End of an SMTP connection (QUIT, QUIT_NC, EOF): abort, close the handler, reset connection state. */
  private async endSmtpConnection(): Promise<void> {
    await this.leaveMessage();
    const h = this.handler;
    this.handler = undefined;
    this.connectSeen = false;
    this.connVerdict = undefined;
    this.macros.clearAll();
    if (h !== undefined) {
      const r = await this.invoke('close', () => h.close());
      if (!r.ok) this.log.error({ code: r.error.code, event: 'close', err: r.error.cause ?? r.error }, 'milter handler close failed');
    }
  }
}

function asUsage(e: unknown): MilterUsageError {
  return e instanceof MilterUsageError ? e : new MilterUsageError('MILTER_ACTION_INVALID', 'handler returned an invalid verdict', { cause: e });
}

function rankName(rank: number): string {
  return Object.entries(RANK).find(([, r]) => r === rank)?.[0] ?? String(rank);
}
