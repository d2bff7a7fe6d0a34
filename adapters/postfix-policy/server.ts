/**
 * The policy server's I/O shell — the only file of the adapter that touches sockets. Per
 * connection: a request decoder, then one answer per request, strictly in order. Guarantees:
 *
 * - A connection's failure (protocol garbage, a timeout, a socket error, anything unexpected)
 *   is logged and closes that connection only; nothing a peer sends can stop the process.
 *   Postfix then retries on a new connection (`smtpd_policy_service_try_limit`) and, failing
 *   that, applies `smtpd_policy_service_default_action`.
 * - Backpressure: reading pauses while requests are being answered and while an answer waits
 *   for the socket to drain; a peer that pipelines cannot make us buffer more than one read.
 * - Timeouts: Postfix keeps an idle policy connection for `smtpd_policy_service_max_idle`
 *   (300 s) and any connection at most `smtpd_policy_service_max_ttl` (1000 s), so we drop a
 *   connection only after it was silent for longer than both (a dead peer), a half-sent request
 *   or an unread answer after `smtpd_policy_service_timeout` (100 s), when Postfix itself has
 *   given up on it.
 * - `setNoDelay(true)`: answers are small and latency-bound.
 * - Graceful close: stop accepting, answer what is in flight, close each connection when it is
 *   idle, and destroy whatever is left at the deadline.
 * - Logs carry codes, states and decision ids — never attribute values, so no address,
 *   certificate name or SASL login reaches the log from here.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { writeDrained } from '../shared/connection.js';
import type { AdapterLogger } from '../shared/logger.js';
import type { SocketAddress } from '../../engine/config/endpoints.js';
import { isParseFailure } from '../../engine/ip.js';
import { bindServer, closeGracefully, formatListen, fromSocketAddress, parseListen, postfixEndpoint, type ListenAddress } from '../shared/listen.js';
import { RequestDecoder, encodeAction, type PolicyLimits, type PolicyRequest } from './codec.js';
import { PolicyProtocolError, PolicyServerError } from './errors.js';
import { answerRequest, type PolicyEngine } from './session.js';

/** The logger (adapters/shared/logger.ts): pino's Logger satisfies it. */
export type PolicyLogger = AdapterLogger;

/** Longer than Postfix's `smtpd_policy_service_max_ttl` (1000 s): only a dead peer is this silent. */
export const DEFAULT_IDLE_TIMEOUT_MS = 1_100_000;
/** Postfix's `smtpd_policy_service_timeout` (100 s): a half-sent request or an unread answer. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 100_000;
/** How long {@link PolicyServer.close} lets answers in flight finish. */
export const DEFAULT_CLOSE_DEADLINE_MS = 10_000;
/** Mode of a unix listen socket: owner and group (e.g. `postfix`) may connect. */
export const DEFAULT_SOCKET_MODE = 0o660;
/** Connections at once: one per smtpd process (Postfix's `default_process_limit` is 100). */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/** Options of {@link PolicyServer.start}. */
export interface PolicyServerOptions {
  /**
   * `Config.postfixPolicy.listen` (a `SocketAddress`), a parsed {@link ListenAddress}, or the
   * text (`inet:10040@127.0.0.1`, `unix:/path`; adapters/shared/listen.ts). Port 0 picks a free port.
   */
  readonly listen: SocketAddress | ListenAddress | string;
  readonly engine: PolicyEngine;
  readonly logger: PolicyLogger;
  /** Request bounds; defaults in codec.ts. */
  readonly limits?: Partial<PolicyLimits>;
  /** Default {@link DEFAULT_IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number;
  /** Default {@link DEFAULT_REQUEST_TIMEOUT_MS}. */
  readonly requestTimeoutMs?: number;
  /** Per decision; default session.ts `DEFAULT_DECISION_TIMEOUT_MS`. */
  readonly decisionTimeoutMs?: number;
  /** Unix sockets only. Default {@link DEFAULT_SOCKET_MODE}. */
  readonly socketMode?: number;
  /** Default {@link DEFAULT_MAX_CONNECTIONS}; more are refused at once (Postfix retries). */
  readonly maxConnections?: number;
}

/** A running policy listener. */
export class PolicyServer {
  /** Where it listens; for port 0 the port the OS chose. */
  readonly address: ListenAddress;
  private readonly server: Server;
  private readonly log: PolicyLogger;
  private readonly live = new Set<Connection>();
  private closing: Promise<void> | undefined;

  private constructor(server: Server, address: ListenAddress, log: PolicyLogger) {
    this.server = server;
    this.address = address;
    this.log = log;
  }

  /** Open connections. */
  get connections(): number {
    return this.live.size;
  }

  /** The endpoint as `check_policy_service` writes it. */
  get postfixEndpoint(): string {
    return postfixEndpoint(this.address);
  }

  /**
   * Listen. Rejects with `PolicyServerError('POLICY_LISTEN_FAILED')` naming the address and the
   * reason (a malformed address, port in use, permission, missing directory, a live socket or
   * another file at the path).
   */
  static async start(opts: PolicyServerOptions): Promise<PolicyServer> {
    const spec = listenAddress(opts.listen);
    const log = opts.logger.child({ adapter: 'postfix-policy' });
    // allowHalfOpen: after Postfix's EOF we still answer what it sent before, then end.
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const address = await bindServer(server, spec, opts.socketMode ?? DEFAULT_SOCKET_MODE).catch((e: unknown) => {
      throw new PolicyServerError('POLICY_LISTEN_FAILED', (e as Error).message, { cause: e });
    });
    const self = new PolicyServer(server, address, log);
    let ids = 0;
    server.on('connection', (socket) => {
      const conn = new Connection(socket, opts, log.child({ conn: ++ids }), () => self.live.delete(conn));
      self.live.add(conn);
      if (self.closing !== undefined) conn.shutdown();
    });
    server.on('drop', () => log.warn({ max: server.maxConnections }, 'policy connection refused: too many connections'));
    server.on('error', (e) => log.error({ err: e }, 'policy listener error'));
    log.debug({ listen: formatListen(address), check_policy_service: postfixEndpoint(address) }, 'postfix policy server listening');
    return self;
  }

  /**
   * Stop accepting, answer requests in flight, close every connection once it is idle, and
   * destroy what is still open after `deadlineMs`. Idempotent; resolves when all is closed.
   */
  close(deadlineMs = DEFAULT_CLOSE_DEADLINE_MS): Promise<void> {
    this.closing ??= (async () => {
      for (const c of this.live) c.shutdown();
      await closeGracefully(this.server, this.address, this.live, deadlineMs, (open) => this.log.warn({ connections: open }, 'policy close deadline reached; dropping open connections'));
      this.log.info({ listen: formatListen(this.address) }, 'postfix policy server closed');
    })();
    return this.closing;
  }
}

/** `PolicyServerOptions.listen` → a {@link ListenAddress}; a malformed text is `POLICY_LISTEN_FAILED`. */
function listenAddress(listen: PolicyServerOptions['listen']): ListenAddress {
  if (typeof listen !== 'string') return 'kind' in listen ? fromSocketAddress(listen) : listen;
  const r = parseListen(listen);
  if (isParseFailure(r)) throw new PolicyServerError('POLICY_LISTEN_FAILED', `invalid policy listen address ${JSON.stringify(listen)}: ${r.error} (${r.fix ?? ''})`);
  return r;
}

/** One policy connection: decoder → answers, strictly in order. */
class Connection {
  readonly closed: Promise<void>;
  private readonly decoder: RequestDecoder;
  private readonly queue: PolicyRequest[] = [];
  private readonly idleMs: number;
  private readonly requestMs: number;
  private decodeError: PolicyProtocolError | undefined;
  private requests = 0;
  private reported = false;
  private busy = false;
  private done = false;
  private eofSeen = false;
  private ending = false;
  private draining = false;

  constructor(
    private readonly socket: Socket,
    private readonly opts: PolicyServerOptions,
    private readonly log: PolicyLogger,
    onClose: () => void,
  ) {
    this.decoder = new RequestDecoder(opts.limits);
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.requestMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    socket.setNoDelay(true);
    socket.setTimeout(this.idleMs);
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.done = true;
        onClose();
        resolve();
      });
    });
    log.debug({ remote: socket.remoteAddress ?? 'unix' }, 'policy connection opened');
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.eof());
    socket.on('timeout', () => {
      if (this.decoder.pending) this.drop('warn', 'POLICY_TIMEOUT', 'a request was not completed in time');
      else this.drop('debug', 'POLICY_IDLE', 'the connection was idle for too long');
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      log.debug({ err: e, code: e.code }, 'policy connection error');
      socket.destroy();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The server is closing: end the connection as soon as nothing is in flight. */
  shutdown(): void {
    this.draining = true;
    if (!this.busy && this.queue.length === 0 && !this.decoder.pending) this.end();
  }

  private end(): void {
    if (this.ending || this.done) return;
    this.ending = true;
    this.queue.length = 0;
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    if (this.ending) return;
    const r = this.decoder.push(chunk);
    for (const q of r.requests) this.queue.push(q);
    if (r.error !== undefined) this.decodeError = r.error;
    void this.pump();
  }

  private eof(): void {
    const e = this.decoder.end();
    if (e !== undefined && this.decodeError === undefined) this.decodeError = e;
    this.eofSeen = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy || this.done || this.ending) return;
    this.busy = true;
    this.socket.pause();
    this.socket.setTimeout(0);
    try {
      while (this.queue.length > 0 && !this.done && !this.ending) {
        await this.answer(this.queue.shift() as PolicyRequest);
      }
      if (this.decodeError !== undefined && !this.done && !this.ending) {
        // (An EOF between requests is Postfix's normal end and no error.)
        return this.drop('warn', this.decodeError.code, this.decodeError.message);
      }
    } catch (e) {
      // Per-connection catch: anything unexpected closes this connection only.
      this.log.error({ err: e, code: 'POLICY_INTERNAL' }, 'policy connection failed; closing it');
      this.socket.destroy();
    } finally {
      this.busy = false;
      if (!this.done && !this.socket.destroyed && !this.ending) {
        if (this.eofSeen || (this.draining && !this.decoder.pending)) this.end();
        else {
          this.socket.setTimeout(this.decoder.pending ? this.requestMs : this.idleMs);
          this.socket.resume();
        }
      }
    }
  }

  private async answer(req: PolicyRequest): Promise<void> {
    const n = ++this.requests;
    const a = await answerRequest(this.opts.engine, req, {
      logBindings: { adapter: 'postfix-policy', req: n },
      ...(this.opts.decisionTimeoutMs === undefined ? {} : { timeoutMs: this.opts.decisionTimeoutMs }),
    });
    const line = { req: n, state: a.state, answer: a.kind, ...(a.code === undefined ? {} : { code: a.code }), ...(a.decision === undefined ? {} : { decision: a.decision.id, stage: a.decision.stage }) };
    if (a.error !== undefined) {
      // A misconfigured Postfix (e.g. too old to send server_address) would repeat this on every
      // request: the first one per connection is an error, the rest debug.
      this.log[this.reported ? 'debug' : 'error']({ ...line, err: a.error }, `policy request not decided: ${a.error.message}`);
      this.reported = true;
    } else {
      this.log.info(line, 'policy answer');
    }
    await this.write(encodeAction(a.action));
  }

  private drop(level: 'debug' | 'warn' | 'error', code: string, message: string): void {
    if (this.done || this.socket.destroyed) return;
    this.log[level]({ code }, `policy connection closed: ${message}`);
    this.ending = true;
    this.queue.length = 0;
    this.socket.destroy();
  }

  /** Write and wait until the socket accepted it (drain), bounded by the request timeout. */
  private write(buf: Buffer): Promise<void> {
    return writeDrained(this.socket, buf, this.requestMs, () => this.drop('warn', 'POLICY_TIMEOUT', 'answers were not read in time'));
  }
}
