/**
 * The milter I/O shell — the only file of the adapter that touches sockets. Per connection: a
 * frame decoder, a session, a handler per SMTP connection. Guarantees:
 *
 * - A connection's failure (protocol garbage, handler crash, timeout, socket error) is logged
 *   and closes that connection only; nothing a peer sends can stop the process.
 * - Backpressure: commands are handled one at a time, in order; when more than
 *   {@link QUEUE_HIGH_WATER} bytes of them wait (a pipelining MTA under NR_* flags, or one that
 *   does not read our replies), reading pauses until they are worked off, so nothing is
 *   buffered without bound. Reading is not paused per command: each pause/resume costs two
 *   system calls. A slow or dead MTA connection holds nothing that others wait for.
 * - Timeouts: an MTA silent for `idleTimeoutMs` is dropped (default as libmilter's 7210 s:
 *   an SMTP client may legitimately idle for Postfix's 300 s `smtpd_timeout` between
 *   commands); replies not drained within `writeTimeoutMs` drop the connection.
 * - `setNoDelay(true)` on every connection: our replies are small and latency-bound.
 * - Graceful close: stop accepting, let open connections finish within a deadline, then
 *   destroy the rest.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { writeDrained } from '../shared/connection.js';
import { bindServer, closeGracefully } from '../shared/listen.js';
import { FrameDecoder, type Frame } from './codec.js';
import { decodeCommand } from './commands.js';
import { MilterProtocolError, MilterServerError } from './errors.js';
import { formatListen, parseListen, type ListenAddress } from './listen.js';
import { encodeReply } from './replies.js';
import { MilterSession, type SessionOptions } from './session.js';
import type { MilterLogger } from './types.js';

/** libmilter's MI_TIMEOUT: how long an MTA connection may stay silent. */
export const DEFAULT_IDLE_TIMEOUT_MS = 7210_000;
/** Bytes of received, not yet handled commands above which reading pauses. */
export const QUEUE_HIGH_WATER = 64 * 1024;
/** How long replies may wait for the socket to drain. */
export const DEFAULT_WRITE_TIMEOUT_MS = 60_000;
/** How long {@link MilterServer.close} lets open connections finish. */
export const DEFAULT_CLOSE_DEADLINE_MS = 10_000;
/** Mode of a unix listen socket: owner and group (e.g. a `postfix` group) may connect. */
export const DEFAULT_SOCKET_MODE = 0o660;

/** Options of {@link MilterServer.start}. Session options apply to every connection. */
export interface MilterServerOptions extends Omit<SessionOptions, 'logger'> {
  /** `inet:PORT@HOST`, `inet6:PORT@HOST` or `unix:/path` (see listen.ts). */
  readonly listen: string;
  readonly logger: MilterLogger;
  /** Default {@link DEFAULT_IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number;
  /** Default {@link DEFAULT_WRITE_TIMEOUT_MS}. */
  readonly writeTimeoutMs?: number;
  /** Unix sockets only. Default {@link DEFAULT_SOCKET_MODE}. */
  readonly socketMode?: number;
}

/** A running milter listener. */
export class MilterServer {
  /** Where it listens; for `port` 0 the port the OS chose. */
  readonly address: ListenAddress;
  private readonly server: Server;
  private readonly log: MilterLogger;
  private readonly live = new Set<Connection>();
  private closing: Promise<void> | undefined;

  private constructor(server: Server, address: ListenAddress, log: MilterLogger) {
    this.server = server;
    this.address = address;
    this.log = log;
  }

  /** Open connections. */
  get connections(): number {
    return this.live.size;
  }

  /**
   * Listen. Rejects with `MilterServerError('MILTER_LISTEN_FAILED')` naming the address and the
   * reason (port in use, permission, missing directory, a live socket at the path), or
   * `MilterUsageError` for a malformed address.
   */
  static async start(opts: MilterServerOptions): Promise<MilterServer> {
    const spec = parseListen(opts.listen);
    const log = opts.logger.child({ adapter: 'milter' });
    // allowHalfOpen: after the MTA's EOF we still answer what it sent before, then end.
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    const address = await bindServer(server, spec, opts.socketMode ?? DEFAULT_SOCKET_MODE).catch((e: unknown) => {
      throw new MilterServerError('MILTER_LISTEN_FAILED', (e as Error).message, { cause: e });
    });
    const self = new MilterServer(server, address, log);
    let ids = 0;
    server.on('connection', (socket) => {
      const id = ++ids;
      const conn = new Connection(socket, { ...opts, connectionId: id }, log.child({ conn: id }), () => self.live.delete(conn));
      self.live.add(conn);
    });
    server.on('error', (e) => log.error({ err: e }, 'milter listener error'));
    log.debug({ listen: formatListen(address) }, 'milter listening');
    return self;
  }

  /**
   * Stop accepting, wait up to `deadlineMs` for open connections to end (an MTA ends one per
   * SMTP session), then destroy the rest. Idempotent; resolves when everything is closed.
   */
  close(deadlineMs = DEFAULT_CLOSE_DEADLINE_MS): Promise<void> {
    this.closing ??= (async () => {
      await closeGracefully(this.server, this.address, this.live, deadlineMs, (open) => this.log.warn({ connections: open }, 'milter close deadline reached; dropping open connections'));
      this.log.info({ listen: formatListen(this.address) }, 'milter listener closed');
    })();
    return this.closing;
  }
}

/** One MTA connection: decoder → session → replies, strictly in order. */
class Connection {
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly log: MilterLogger;
  private readonly decoder: FrameDecoder;
  private readonly session: MilterSession;
  private readonly writeTimeoutMs: number;
  private readonly queue: Frame[] = [];
  private queuedBytes = 0;
  private paused = false;
  private decodeError: MilterProtocolError | undefined;
  private busy = false;
  private done = false;
  private eofSeen = false;
  private ending = false;

  constructor(socket: Socket, opts: MilterServerOptions & { readonly connectionId: number }, log: MilterLogger, onClose: () => void) {
    this.socket = socket;
    this.log = log;
    this.writeTimeoutMs = opts.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    this.decoder = new FrameDecoder(opts.maxFrameLength === undefined ? {} : { maxFrameLength: opts.maxFrameLength });
    this.session = new MilterSession({ ...opts, logger: log });
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.done = true;
        void this.session.end().then(() => {
          onClose();
          resolve();
        });
      });
    });
    log.debug({ remote: socket.remoteAddress ?? 'unix' }, 'milter connection opened');
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.eof());
    socket.on('timeout', () => this.drop('warn', 'MILTER_TIMEOUT', 'the MTA was silent for too long'));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      log.debug({ err: e, code: e.code }, 'milter connection error');
      socket.destroy();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Orderly end after QUIT or EOF: nothing more is read or answered. */
  private end(): void {
    this.ending = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    if (this.ending) return;
    const r = this.decoder.push(chunk);
    for (const f of r.frames) {
      this.queue.push(f);
      this.queuedBytes += f.data.length;
    }
    if (r.error !== undefined) this.decodeError = r.error;
    if (this.queuedBytes > QUEUE_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
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
    try {
      while (this.queue.length > 0 && !this.done && !this.ending) {
        const frame = this.queue.shift() as Frame;
        this.queuedBytes -= frame.data.length;
        const cmd = decodeCommand(frame);
        if (cmd instanceof MilterProtocolError) return this.protocolError(cmd);
        const step = await this.session.handle(cmd);
        if (step.replies.length > 0) await this.write(Buffer.concat(step.replies.map(encodeReply)));
        if (step.error !== undefined) return this.protocolError(step.error);
        if (step.close) return this.end();
      }
      if (this.decodeError !== undefined && !this.done && !this.ending) return this.protocolError(this.decodeError);
    } catch (e) {
      // Per-connection catch: anything unexpected closes this connection only.
      this.log.error({ err: e, code: 'MILTER_INTERNAL' }, 'milter connection failed; closing it');
      this.socket.destroy();
    } finally {
      this.busy = false;
      if (!this.done && !this.socket.destroyed && !this.ending) {
        if (this.eofSeen) this.end();
        else if (this.paused) {
          this.paused = false;
          this.socket.resume();
        }
      }
    }
  }

  private protocolError(e: MilterProtocolError): void {
    this.drop('warn', e.code, e.message);
  }

  private drop(level: 'warn' | 'error', code: string, message: string): void {
    if (this.done || this.socket.destroyed) return;
    this.log[level]({ code }, `milter connection closed: ${message}`);
    this.ending = true;
    this.queue.length = 0;
    this.socket.destroy();
  }

  /** Write and wait until the socket accepted it (drain), bounded by the write timeout. */
  private write(buf: Buffer): Promise<void> {
    return writeDrained(this.socket, buf, this.writeTimeoutMs, () => this.drop('warn', 'MILTER_TIMEOUT', 'replies were not read in time'));
  }
}
