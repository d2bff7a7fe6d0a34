/**
 * A line-at-a-time SMTP client for driving a peer by hand (Sendmail `-bs` over stdio, or any
 * server over TCP): one command, then wait for its complete reply (RFC 5321 §4.2: `NNN-` lines
 * continue, `NNN ` ends). Each read is bounded by a timeout.
 */
import { connect } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { PeerError } from './proc.js';

/** One complete SMTP reply. */
export interface SmtpReply {
  readonly code: number;
  /** Text of each line after `NNN-` / `NNN `. */
  readonly lines: readonly string[];
  /** The lines joined with `\n`. */
  readonly text: string;
}

const MAX_BUFFER = 1024 * 1024;

/** Drives one SMTP session over a readable/writable pair. */
export class SmtpDialog {
  private buf = '';
  private ended = false;
  private waiter: (() => void) | null = null;
  /** Every line sent (`C: `) and received (`S: `), for assertion messages. */
  readonly transcript: string[] = [];

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly timeoutMs = 10_000,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {
    input.setEncoding('latin1');
    input.on('data', (s: string) => {
      this.buf += s;
      if (this.buf.length > MAX_BUFFER) this.buf = this.buf.slice(-MAX_BUFFER);
      this.wake();
    });
    input.on('end', () => {
      this.ended = true;
      this.wake();
    });
    input.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** Opens a TCP session and reads the greeting. */
  static async connect(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<{ dialog: SmtpDialog; greeting: SmtpReply }> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (e) => reject(new PeerError('PEER_CONNECT', `cannot connect to ${host}:${port}: ${e.message}`, { cause: e })));
    });
    const dialog = new SmtpDialog(socket, socket, timeoutMs, async () => {
      socket.destroy();
    });
    return { dialog, greeting: await dialog.read() };
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Reads one complete reply. */
  async read(): Promise<SmtpReply> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const reply = this.take();
      if (reply !== null) return reply;
      if (this.ended) throw new PeerError('PEER_SMTP_EOF', `connection closed before a complete reply\n${this.transcript.join('\n')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new PeerError('PEER_TIMEOUT', `no complete SMTP reply within ${this.timeoutMs} ms\n${this.transcript.join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  private take(): SmtpReply | null {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf('\n', pos);
      if (nl < 0) return null;
      const line = this.buf.slice(pos, nl).replace(/\r$/, '');
      pos = nl + 1;
      const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (m === null) throw new PeerError('PEER_SMTP_SYNTAX', `not an SMTP reply line: ${JSON.stringify(line)}`);
      lines.push(line);
      if (m[2] !== '-') {
        this.buf = this.buf.slice(pos);
        for (const l of lines) this.transcript.push(`S: ${l}`);
        const texts = lines.map((l) => l.slice(4));
        return { code: Number(m[1]), lines: texts, text: texts.join('\n') };
      }
    }
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string): Promise<SmtpReply> {
    this.transcript.push(`C: ${line}`);
    this.output.write(`${line}\r\n`);
    return this.read();
  }

  /**
   * `DATA`, then the message (CRLF line ends, dot-stuffed per RFC 5321 §4.5.2), then `.`.
   * Returns the reply to DATA when it is not 354, else the reply to the final dot.
   */
  async data(message: string): Promise<SmtpReply> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    const body = message.replace(/\r?\n/g, '\r\n').replace(/\r\n$/, '');
    const stuffed = body.split('\r\n').map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
    this.transcript.push(`C: <${stuffed.length} bytes of message>`);
    this.output.write(`${stuffed}\r\n.\r\n`);
    return this.read();
  }

  /** Ends the session (without QUIT: send it yourself when the test wants the 221). */
  async close(): Promise<void> {
    this.output.end();
    await this.onClose();
  }
}
