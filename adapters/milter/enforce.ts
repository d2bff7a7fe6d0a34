/**
 * Enforcement through the milter: one engine `Session` per SMTP connection the MTA reports, fed
 * with facts from the milter callbacks and macros, each decision answered as its milter verdict
 * (decisions.ts), and at end of message the header firewall and the trusted flag headers
 * applied. The seam is adapters/README.md; what the MTAs send is adapters/spec/milter-v6.md.
 *
 * Fail closed, always: no `{daemon_addr}`/`{daemon_port}` (no connector can be chosen — never
 * guessed), no client IP, more SMTP connections than allowed, headers past the engine's input
 * bounds, an engine failure (already a tempfail decision), a handler that throws or outlives the
 * session's deadline (session.ts) — each is a 4xx, never an accept.
 */
import type { Engine } from '../../engine/engine.js';
import { REPLY_CATALOGUE } from '../../engine/replies.js';
import type { Session } from '../../engine/session.js';
import type { Decision } from '../../engine/types.js';
import { SMFIF_ADDHDRS, SMFIF_CHGHDRS } from './constants.js';
import { headerEdits, milterAction } from './decisions.js';
import { MilterUsageError } from './errors.js';
import { DAEMON_MACROS_HINT, MILTER_MACROS, authFromMacros, clientIp, daemonEndpoint, mailArgs, tlsFromMacros, tlsKey } from './facts.js';
import type { Macros } from './macros.js';
import type { MilterEvent, MilterNeeds } from './negotiate.js';
import { MilterServer, type MilterServerOptions } from './server.js';
import type { ConnectInfo, EomResult, HandlerContext, HandlerFactory, MilterAction, MilterHandler, MilterLogger } from './types.js';

/** What enforcement needs of the engine (an `Engine`; tests may wrap one). */
export type MilterEngine = Pick<Engine, 'session' | 'limits'>;

/** Default bound on SMTP connections served at once; more are refused at CONNECT with a 421. */
export const DEFAULT_MAX_CONNECTIONS = 5000;

/** Codes of the log lines enforcement writes itself (the engine logs every decision). */
export type EnforcementLogCode = 'MILTER_MACROS_MISSING' | 'MILTER_CLIENT_UNKNOWN' | 'MILTER_OVERLOAD' | 'MILTER_HEADERS_TOO_LARGE';

/** Options of {@link createMilterHandlerFactory}. */
export interface EnforcementOptions {
  /** Default {@link DEFAULT_MAX_CONNECTIONS}. */
  readonly maxConnections?: number;
}

/** The events enforcement needs: no DATA (nothing to decide) and no UNKNOWN (the MTA refuses those). */
const EVENTS: readonly MilterEvent[] = ['connect', 'helo', 'mail', 'rcpt', 'header', 'eoh', 'body'];

/**
 * The negotiation enforcement needs: header add and change (the firewall and the flag headers —
 * an MTA that cannot edit headers is refused, fail closed), its events and its macros.
 * `noReply` may name `header` and `body`, the events enforcement always continues (the
 * decision comes at end of headers / of message); the MTA then does not wait for a reply.
 */
export function milterNeeds(options: { readonly noReply?: readonly ('header' | 'body')[] } = {}): MilterNeeds {
  return { requiredActions: SMFIF_ADDHDRS | SMFIF_CHGHDRS, events: EVENTS, macros: MILTER_MACROS, noReply: options.noReply ?? [], skip: false };
}

/** The handler factory for a milter server: one enforcing handler per SMTP connection. */
export function createMilterHandlerFactory(engine: MilterEngine, options: EnforcementOptions = {}): HandlerFactory {
  const load = { live: 0, max: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS };
  return (ctx) => new EnforcingHandler(engine, ctx, load);
}

/** Options of {@link startMilter}: the server's, plus enforcement's. */
export interface StartMilterOptions extends Omit<MilterServerOptions, 'createHandler' | 'needs'>, EnforcementOptions {
  readonly noReply?: readonly ('header' | 'body')[];
}

/** Listen and enforce `engine`'s policy through the milter. Rejects as {@link MilterServer.start}. */
export function startMilter(engine: MilterEngine, options: StartMilterOptions): Promise<MilterServer> {
  const { maxConnections, noReply, ...server } = options;
  return MilterServer.start({
    ...server,
    createHandler: createMilterHandlerFactory(engine, maxConnections === undefined ? {} : { maxConnections }),
    needs: milterNeeds(noReply === undefined ? {} : { noReply }),
  });
}

const CONTINUE: MilterAction = { kind: 'continue' };
const TEMPFAIL: MilterAction = { kind: 'tempfail' };

/** The engine's own "cannot decide at CONNECT" reply (a 421: the MTA closes the SMTP session). */
function cannotDecide(): MilterAction {
  const r = REPLY_CATALOGUE.engine_error_connect.exchange;
  return { kind: 'tempfail', reply: { code: r.code, enhanced: r.enhanced, text: r.text } };
}

/** The message being received: what the header firewall and the size checks need. */
interface Message {
  readonly headers: [string, string][];
  /** Header bytes as on the wire (`Name: value` CRLF each, folds as CRLF) plus the empty line. */
  headerBytes: number;
  bodyBytes: number;
  /** Why the header block is past the engine's input bounds (then nothing more is kept). */
  overflow?: string;
}

const newMessage = (): Message => ({ headers: [], headerBytes: 2, bodyBytes: 0 });

/** One SMTP connection. Calls are sequential (session.ts), so no state needs a lock. */
class EnforcingHandler implements MilterHandler {
  private session: Session | undefined;
  /** A 5xx `disconnect`: the MTA keeps the connection; everything after it gets this reply. */
  private refused: MilterAction | undefined;
  private tls = '';
  private auth = '';
  private msg = newMessage();
  private counted = false;
  private readonly log: MilterLogger;

  constructor(
    private readonly engine: MilterEngine,
    private readonly ctx: HandlerContext,
    private readonly load: { live: number; readonly max: number },
  ) {
    this.log = ctx.logger;
  }

  async connect(info: ConnectInfo, macros: Macros): Promise<MilterAction> {
    if (this.load.live >= this.load.max) {
      this.log.warn({ code: 'MILTER_OVERLOAD' satisfies EnforcementLogCode, connections: this.load.live }, 'too many SMTP connections at once; refusing with 421');
      return cannotDecide();
    }
    this.load.live++;
    this.counted = true;
    const local = daemonEndpoint(macros);
    if (local === undefined) {
      this.log.error({ code: 'MILTER_MACROS_MISSING' satisfies EnforcementLogCode }, `the MTA sent no {daemon_addr} and {daemon_port}, so no connector can be chosen; refusing with 421: ${DAEMON_MACROS_HINT}`);
      return cannotDecide();
    }
    const remote = clientIp(info.address, macros);
    if (remote === undefined) {
      this.log.error({ code: 'MILTER_CLIENT_UNKNOWN' satisfies EnforcementLogCode, family: info.family }, 'the MTA reported no client IP address (local submission?), so no connector can match; refusing with 421');
      return cannotDecide();
    }
    this.session = this.engine.session({ local, remote }, { logBindings: { adapter: 'milter', conn: this.ctx.connection, smtp: this.ctx.smtpConnection } });
    return this.verdict(await this.session.connect());
  }

  async helo(name: string, macros: Macros): Promise<MilterAction> {
    const s = this.open();
    if (this.refused !== undefined) return this.refused;
    this.noteTls(s, macros);
    return this.verdict(await s.helo(name));
  }

  async mail(args: readonly string[], macros: Macros): Promise<MilterAction> {
    const s = this.open();
    if (this.refused !== undefined) return this.refused;
    this.noteTls(s, macros);
    const auth = authFromMacros(macros);
    const key = auth === null ? '' : `${auth.mechanism}\0${auth.user}`;
    if (auth !== null && key !== this.auth) {
      // The policy judges an MTA AUTH here, at MAIL: BasicAuth off, or plaintext under
      // BasicAuthRequireTLS, refuses it (a milter never sees the AUTH command itself).
      s.mtaAuthenticated(auth);
      this.auth = key;
    }
    // The MTA starts a transaction only after the previous one ended (end of message, RSET, a
    // refusal); an ABORT it did not send must not leave the engine's transaction open.
    s.rset();
    this.msg = newMessage();
    const { from, params } = mailArgs(args);
    return this.verdict(await s.mail(from, params));
  }

  async rcpt(args: readonly string[]): Promise<MilterAction> {
    const s = this.open();
    if (this.refused !== undefined) return this.refused;
    return this.verdict(await s.rcpt(args[0] ?? ''));
  }

  data(): MilterAction {
    return CONTINUE;
  }

  header(name: string, value: string): MilterAction {
    const m = this.msg;
    if (m.overflow !== undefined) return CONTINUE;
    const limits = this.engine.limits;
    const valueBytes = Buffer.byteLength(value);
    const folds = value.split('\n').length - 1;
    const bytes = Buffer.byteLength(name) + valueBytes + folds + 4; // "Name: value\r\n", LF folds as CRLF
    if (m.headers.length >= limits.headerFields) m.overflow = `more than ${limits.headerFields} header fields`;
    else if (valueBytes > limits.headerValueBytes) m.overflow = `a header field longer than ${limits.headerValueBytes} bytes`;
    else if (m.headerBytes + bytes > limits.headerBytes) m.overflow = `a header block larger than ${limits.headerBytes} bytes`;
    else {
      m.headers.push([name, value]);
      m.headerBytes += bytes;
    }
    return CONTINUE;
  }

  async eoh(): Promise<MilterAction> {
    const s = this.open();
    if (this.refused !== undefined) return this.refused;
    if (this.msg.overflow !== undefined) {
      this.log.warn({ code: 'MILTER_HEADERS_TOO_LARGE' satisfies EnforcementLogCode }, `message refused with a temporary failure: ${this.msg.overflow}`);
      return TEMPFAIL;
    }
    return this.verdict(await s.headers(this.msg.headers, this.msg.headerBytes));
  }

  body(chunk: Buffer): MilterAction {
    this.msg.bodyBytes += chunk.length;
    return CONTINUE;
  }

  async eom(): Promise<EomResult> {
    const s = this.open();
    if (this.refused !== undefined) return { action: this.refused };
    const m = this.msg;
    this.msg = newMessage();
    const d = await s.eom(m.headerBytes + m.bodyBytes);
    if (d.decision !== 'accept') return { action: this.verdict(d) };
    const modifications = headerEdits(d, m.headers.map(([name]) => name));
    await s.messageAccepted();
    return { modifications, action: { kind: 'accept' } };
  }

  abort(): void {
    this.session?.rset();
    this.msg = newMessage();
  }

  async close(): Promise<void> {
    if (this.counted) {
      this.counted = false;
      this.load.live--;
    }
    const s = this.session;
    this.session = undefined;
    await s?.close();
  }

  /** The session CONNECT opened; any other event first is a failure (→ SMFIR_TEMPFAIL). */
  private open(): Session {
    if (this.session === undefined) throw new MilterUsageError('MILTER_HANDLER_FAILED', 'an SMTP event before a successful CONNECT');
    return this.session;
  }

  /** TLS appeared or changed (STARTTLS, seen at the next EHLO or MAIL): what was learnt in cleartext is void. */
  private noteTls(s: Session, macros: Macros): void {
    const tls = tlsFromMacros(macros);
    const key = tlsKey(tls);
    if (tls === null || key === this.tls) return;
    s.starttls(tls);
    this.tls = key;
    this.auth = '';
  }

  private verdict(d: Decision): MilterAction {
    const action = milterAction(d);
    if (d.decision === 'disconnect' && action.kind === 'reject') this.refused = action;
    return action;
  }
}
