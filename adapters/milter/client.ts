/**
 * The MTA side of the milter protocol (the role Postfix and Sendmail play), like go-milter's
 * client.go: connect, negotiate with a configurable offer, send every SMFIC_* command (with the
 * MACRO packet Postfix sends before it), read replies and end-of-message modifications. Used by
 * `mta-policy milter-check` and the tests. Besides server.ts this is the adapter's only file
 * that opens sockets: it is the other end of the wire. It honours the negotiated NR_* flags: a
 * command the milter will not answer resolves to `undefined` at once.
 */
import { connect, type Socket } from 'node:net';
import { FrameDecoder } from './codec.js';
import { encodeCommand, type AddressFamily, type MilterCommand, type OptNeg } from './commands.js';
import {
  SMFIC_BODY,
  SMFIC_BODYEOB,
  SMFIC_CONNECT,
  SMFIC_DATA,
  SMFIC_EOH,
  SMFIC_HEADER,
  SMFIC_HELO,
  SMFIC_MAIL,
  SMFIC_RCPT,
  SMFIC_UNKNOWN,
  SMFI_CURR_ACTS,
  SMFI_CURR_PROT,
  SMFI_PROT_VERSION,
} from './constants.js';
import { MilterProtocolError } from './errors.js';
import { parseListen, type ListenAddress } from './listen.js';
import { EVENT_BITS, type MilterEvent } from './negotiate.js';
import { FINAL_REPLY_KINDS, decodeReply, type MilterReply } from './replies.js';

/** What Postfix 3.7, Sendmail 8.17 and miltertest offer: version 6, every action and step. */
export const FULL_OFFER: OptNeg = { version: SMFI_PROT_VERSION, actions: SMFI_CURR_ACTS, protocol: SMFI_CURR_PROT };

/** Macros to send before a command, as a MACRO packet for that command's stage. */
export type MacroPairs = Readonly<Record<string, string>> | readonly (readonly [string, string])[];

/** The milter's answer to end of message: interim packets, then the verdict. */
export interface EomOutcome {
  readonly modifications: readonly MilterReply[];
  readonly verdict: MilterReply;
}

/** Options of {@link MilterClient.open}. */
export interface MilterClientOptions {
  /** Per-reply wait. Default 5 s. */
  readonly timeoutMs?: number;
}

const STAGE_OF: Readonly<Partial<Record<MilterCommand['kind'], number>>> = {
  connect: SMFIC_CONNECT,
  helo: SMFIC_HELO,
  mail: SMFIC_MAIL,
  rcpt: SMFIC_RCPT,
  data: SMFIC_DATA,
  header: SMFIC_HEADER,
  eoh: SMFIC_EOH,
  body: SMFIC_BODY,
  eom: SMFIC_BODYEOB,
  unknown: SMFIC_UNKNOWN,
};

const EVENT_OF: Readonly<Partial<Record<MilterCommand['kind'], MilterEvent>>> = {
  connect: 'connect',
  helo: 'helo',
  mail: 'mail',
  rcpt: 'rcpt',
  data: 'data',
  header: 'header',
  eoh: 'eoh',
  body: 'body',
  unknown: 'unknown',
};

/** One MTA ↔ milter connection. */
export class MilterClient {
  /** The milter's OPTNEG answer, after {@link negotiate}. */
  negotiated: Extract<MilterReply, { kind: 'optneg' }> | undefined;
  private readonly socket: Socket;
  private readonly timeoutMs: number;
  private readonly decoder = new FrameDecoder();
  private readonly replies: (MilterReply | MilterProtocolError)[] = [];
  private waiter: ((r: MilterReply | MilterProtocolError) => void) | undefined;
  private ended = false;
  /** Resolves when the milter closed the connection. */
  readonly closed: Promise<void>;

  private constructor(socket: Socket, opts: MilterClientOptions) {
    this.socket = socket;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const r = this.decoder.push(chunk);
      for (const f of r.frames) this.deliver(decodeReply(f));
      if (r.error !== undefined) this.deliver(r.error);
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.ended = true;
        this.deliver(new MilterProtocolError('MILTER_CONNECTION_CLOSED', 'the milter closed the connection'));
        resolve();
      });
    });
    socket.on('error', () => undefined); // surfaces as 'close'
  }

  /** Connect to `inet:PORT@HOST`, `inet6:PORT@HOST` or `unix:/path`. */
  static open(address: string | ListenAddress, opts: MilterClientOptions = {}): Promise<MilterClient> {
    const a = typeof address === 'string' ? parseListen(address) : address;
    return new Promise((resolve, reject) => {
      const socket = a.transport === 'unix' ? connect({ path: a.path }) : connect({ host: a.host, port: a.port });
      socket.once('connect', () => resolve(new MilterClient(socket, opts)));
      socket.once('error', reject);
    });
  }

  private deliver(r: MilterReply | MilterProtocolError): void {
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w(r);
    } else if (!(r instanceof MilterProtocolError && r.code === 'MILTER_CONNECTION_CLOSED')) {
      // a close is remembered by `ended`; readReply reports it after the queued replies
      this.replies.push(r);
    }
  }

  /** The next reply packet. Rejects on timeout, malformed data or a closed connection. */
  readReply(): Promise<MilterReply> {
    const queued = this.replies.shift();
    const got =
      queued !== undefined
        ? Promise.resolve(queued)
        : this.ended
          ? Promise.resolve(new MilterProtocolError('MILTER_CONNECTION_CLOSED', 'the milter closed the connection'))
          : new Promise<MilterReply | MilterProtocolError>((resolve) => {
              const timer = setTimeout(() => {
                this.waiter = undefined;
                resolve(new MilterProtocolError('MILTER_TIMEOUT', `no reply within ${this.timeoutMs} ms`));
              }, this.timeoutMs);
              this.waiter = (r) => {
                clearTimeout(timer);
                resolve(r);
              };
            });
    return got.then((r) => (r instanceof MilterProtocolError ? Promise.reject(r) : r));
  }

  /** Replies received but not yet read. */
  get pendingReplies(): number {
    return this.replies.length;
  }

  /** Send bytes as they are (garbage tests). */
  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Send one command without reading anything. */
  write(cmd: MilterCommand): void {
    this.socket.write(encodeCommand(cmd));
  }

  /** SMFIC_OPTNEG with `offer` (default {@link FULL_OFFER}); resolves to the milter's answer. */
  async negotiate(offer: Partial<OptNeg> = {}): Promise<Extract<MilterReply, { kind: 'optneg' }>> {
    this.write({ kind: 'optneg', ...FULL_OFFER, ...offer });
    const r = await this.readReply();
    if (r.kind !== 'optneg') throw new MilterProtocolError('MILTER_REPLY_MALFORMED', `expected an OPTNEG answer, got ${r.kind}`);
    this.negotiated = r;
    return r;
  }

  /** Whether the milter will answer `kind` (false for events it negotiated NR_* for). */
  expectsReply(kind: MilterCommand['kind']): boolean {
    if (kind === 'eom' || kind === 'optneg') return true;
    const ev = EVENT_OF[kind];
    if (ev === undefined) return false; // macro, abort, quit, quitNc
    return ((this.negotiated?.protocol ?? 0) & EVENT_BITS[ev].nr) === 0;
  }

  /**
   * Send `cmd` — preceded by a MACRO packet for its stage when `macros` is given, as Postfix
   * does — and read its single reply, or resolve `undefined` when none is due.
   */
  async send(cmd: MilterCommand, macros?: MacroPairs): Promise<MilterReply | undefined> {
    const stage = STAGE_OF[cmd.kind];
    if (macros !== undefined && stage !== undefined) {
      const pairs = Array.isArray(macros) ? (macros as readonly (readonly [string, string])[]) : Object.entries(macros);
      this.write({ kind: 'macro', stage, macros: pairs });
    }
    this.write(cmd);
    return this.expectsReply(cmd.kind) ? this.readReply() : undefined;
  }

  connect(hostname: string, family: AddressFamily, address?: string, port?: number, macros?: MacroPairs): Promise<MilterReply | undefined> {
    const cmd: MilterCommand =
      family === 'unknown' ? { kind: 'connect', hostname, family } : { kind: 'connect', hostname, family, address: address ?? '', port: port ?? 0 };
    return this.send(cmd, macros);
  }
  helo(name: string, macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'helo', name }, macros);
  }
  mail(args: readonly string[], macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'mail', args }, macros);
  }
  rcpt(args: readonly string[], macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'rcpt', args }, macros);
  }
  data(macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'data' }, macros);
  }
  header(name: string, value: string, macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'header', name, value }, macros);
  }
  eoh(macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'eoh' }, macros);
  }
  body(chunk: Buffer | string, macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'body', chunk: typeof chunk === 'string' ? Buffer.from(chunk) : chunk }, macros);
  }
  unknown(command: string, macros?: MacroPairs): Promise<MilterReply | undefined> {
    return this.send({ kind: 'unknown', command }, macros);
  }

  /** SMFIC_BODYEOB, then every interim packet up to and including the final verdict. */
  async eom(macros?: MacroPairs): Promise<EomOutcome> {
    const first = (await this.send({ kind: 'eom', chunk: Buffer.alloc(0) }, macros)) as MilterReply;
    const modifications: MilterReply[] = [];
    let r = first;
    while (!FINAL_REPLY_KINDS.has(r.kind)) {
      modifications.push(r);
      r = await this.readReply();
    }
    return { modifications, verdict: r };
  }

  abort(): void {
    this.write({ kind: 'abort' });
  }

  /** SMFIC_QUIT; resolves once the milter closed the connection. */
  async quit(): Promise<void> {
    this.write({ kind: 'quit' });
    await this.closed;
  }

  quitNc(): void {
    this.write({ kind: 'quitNc' });
  }

  /** Close without QUIT (as Postfix does after a connect-level verdict). */
  async close(): Promise<void> {
    this.socket.end();
    await this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
