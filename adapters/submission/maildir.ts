/**
 * Final delivery into a Maildir (D. J. Bernstein, "Using maildir format",
 * https://cr.yp.to/proto/maildir.html): write `tmp/<unique>`, fsync it, rename it into
 * `new/`, fsync `new/`, and only then report success. A crash at any point leaves either
 * nothing or a stray file in `tmp/` (which readers ignore), never a partial message in `new/`.
 * This is what lets the listener answer 250 (RFC 5321 §6.1: a 250 takes responsibility for the message).
 *
 * The message is streamed: one chunk is held at a time and the source is read only as fast as
 * the disk takes it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MtaPolicyError } from '../../engine/errors.js';
import type { SmtpReply } from '../../engine/types.js';

export type MaildirErrorCode =
  | 'MAILDIR_UNAVAILABLE'
  | 'MAILDIR_NO_SPACE'
  | 'MAILDIR_WRITE_FAILED'
  | 'MAILDIR_TOO_LARGE'
  | 'MAILDIR_SOURCE_FAILED'
  | 'MAILDIR_BAD_ENVELOPE';

const REPLIES: Readonly<Record<MaildirErrorCode, SmtpReply>> = {
  MAILDIR_UNAVAILABLE: { code: 451, enhanced: '4.3.0', text: 'Local delivery failed, try again later' },
  MAILDIR_WRITE_FAILED: { code: 451, enhanced: '4.3.0', text: 'Local delivery failed, try again later' },
  MAILDIR_SOURCE_FAILED: { code: 451, enhanced: '4.3.0', text: 'Message not received in full' },
  MAILDIR_BAD_ENVELOPE: { code: 451, enhanced: '4.3.0', text: 'Local delivery failed, try again later' },
  // RFC 3463 X.3.1 "Mail system full"; Postfix answers 452 4.3.1 Insufficient system storage.
  MAILDIR_NO_SPACE: { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage' },
  // RFC 3463 X.3.4 "Message too big for system".
  MAILDIR_TOO_LARGE: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' },
};

/**
 * Delivery failed; nothing was delivered and the temp file is gone. `reply` is what the
 * listener answers (details such as paths stay in `message`, for the log).
 */
export class MaildirError extends MtaPolicyError {
  declare readonly code: MaildirErrorCode;
  readonly reply: SmtpReply;
  constructor(code: MaildirErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.reply = REPLIES[code];
  }
}

export interface MaildirDeliveryOptions {
  /** Refuse (MAILDIR_TOO_LARGE) once the source has produced more than this many bytes. */
  readonly maxBytes: number;
  /**
   * The envelope sender, written as the first line `Return-Path: <…>`: the final delivery agent
   * adds it (RFC 5321 §4.4). `''` is the null sender `<>`. Omit to add no line.
   */
  readonly returnPath?: string;
  /**
   * `lf` (default) stores lines with LF as Maildir readers expect (qmail-local, Dovecot's
   * `mail_save_crlf = no`); `crlf` stores the bytes as received.
   */
  readonly lineEndings?: 'lf' | 'crlf';
  /** Host part of the unique name; default `os.hostname()`. */
  readonly hostname?: string;
}

/** A completed delivery. */
export interface MaildirDelivery {
  /** Absolute path of the file in `new/`. */
  readonly path: string;
  /** Its unique name. */
  readonly name: string;
  /** Bytes written to the file. */
  readonly bytes: number;
}

/** Anything that yields the message (the listener's DATA stream, or chunks); shared with next-hop-client.ts. */
export type MessageSource = Readable | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

let deliveries = 0;

/**
 * Unique name per the Maildir spec: `<seconds>.M<usec>P<pid>Q<deliveries>R<random>.<host>`, with
 * `/` and `:` in the host written as `\057` and `\072`.
 */
function uniqueName(host: string): string {
  const now = Date.now();
  const usec = (now % 1000) * 1000 + Math.floor((performance.now() % 1) * 1000);
  const safeHost = host.replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${Math.floor(now / 1000)}.M${usec}P${process.pid}Q${++deliveries}R${randomBytes(8).toString('hex')}.${safeHost}`;
}

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException | undefined)?.code ?? 'unknown';
}

function fsError(what: string, e: unknown): MaildirError {
  const code = errno(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new MaildirError('MAILDIR_NO_SPACE', `${what}: ${code}`, { cause: e });
  return new MaildirError('MAILDIR_WRITE_FAILED', `${what}: ${code}`, { cause: e });
}

/** Creates `dir` and its `tmp/`, `new/`, `cur/` (mode 0700) where missing. */
export async function ensureMaildir(dir: string): Promise<void> {
  let created = false;
  try {
    for (const sub of ['', 'tmp', 'new', 'cur']) {
      created = (await mkdir(join(dir, sub), { recursive: true, mode: 0o700 })) !== undefined || created;
    }
    // Make the new directory entries themselves durable before anything is renamed into them.
    if (created) await fsyncDir(dir);
  } catch (e) {
    throw new MaildirError('MAILDIR_UNAVAILABLE', `cannot create Maildir ${dir}: ${errno(e)}`, { cause: e });
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Delivers one message into the Maildir at `dir` and resolves once it is durable in `new/`.
 * Rejects with `MaildirError`; on rejection nothing is left in `tmp/` or `new/`. A Readable
 * source is neither destroyed nor drained on failure: the caller decides (smtp-server drains it).
 */
export async function deliverToMaildir(dir: string, source: MessageSource, opts: MaildirDeliveryOptions): Promise<MaildirDelivery> {
  if (opts.returnPath !== undefined && (/[\r\n]/.test(opts.returnPath) || opts.returnPath.length > 998)) {
    throw new MaildirError('MAILDIR_BAD_ENVELOPE', 'the return path contains a line break or is longer than a header line');
  }
  await ensureMaildir(dir);
  const host = opts.hostname ?? hostname();
  let name = uniqueName(host);
  let fh: FileHandle | undefined;
  let tmpPath = join(dir, 'tmp', name);
  for (let attempt = 0; fh === undefined; attempt++) {
    try {
      fh = await open(tmpPath, 'wx', 0o600);
    } catch (e) {
      // EEXIST would need a clock step back within the same pid and counter; try a new name once or twice.
      if (errno(e) !== 'EEXIST' || attempt >= 2) {
        const code = errno(e);
        throw code === 'ENOSPC' || code === 'EDQUOT' ? fsError(`cannot create ${tmpPath}`, e) : new MaildirError('MAILDIR_UNAVAILABLE', `cannot create ${tmpPath}: ${code}`, { cause: e });
      }
      name = uniqueName(host);
      tmpPath = join(dir, 'tmp', name);
    }
  }
  let closed = false;
  try {
    const eol = opts.lineEndings === 'crlf' ? '\r\n' : '\n';
    let written = 0;
    const write = async (b: Buffer): Promise<void> => {
      if (b.length === 0) return;
      try {
        await fh.write(b);
      } catch (e) {
        throw fsError(`cannot write ${tmpPath}`, e);
      }
      written += b.length;
    };
    if (opts.returnPath !== undefined) await write(Buffer.from(`Return-Path: <${opts.returnPath}>${eol}`, 'utf8'));
    const toLf = opts.lineEndings === 'crlf' ? undefined : crlfToLf();
    let received = 0;
    try {
      for await (const chunk of iterateMessage(source)) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        received += buf.length;
        if (received > opts.maxBytes) throw new MaildirError('MAILDIR_TOO_LARGE', `message exceeds ${opts.maxBytes} bytes`);
        await write(toLf === undefined ? buf : toLf(buf));
      }
    } catch (e) {
      if (e instanceof MaildirError) throw e;
      throw new MaildirError('MAILDIR_SOURCE_FAILED', `message source failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (toLf !== undefined) await write(toLf(undefined));
    try {
      await fh.sync();
      closed = true;
      await fh.close();
    } catch (e) {
      throw fsError(`cannot fsync ${tmpPath}`, e);
    }
    // Dovecot's ",S=<size>" lets readers learn the size without stat(); part of the unique base name.
    const finalName = `${name},S=${written}`;
    const newPath = join(dir, 'new', finalName);
    try {
      await rename(tmpPath, newPath);
    } catch (e) {
      throw fsError(`cannot rename into ${join(dir, 'new')}`, e);
    }
    try {
      await fsyncDir(join(dir, 'new'));
    } catch (e) {
      // The rename is visible but perhaps not durable: retract it so no 250 is ever given for it.
      await unlink(newPath).catch(() => undefined);
      throw fsError(`cannot fsync ${join(dir, 'new')}`, e);
    }
    return { path: newPath, name: finalName, bytes: written };
  } catch (e) {
    if (!closed) await fh.close().catch(() => undefined);
    await unlink(tmpPath).catch(() => undefined);
    throw e instanceof MaildirError ? e : new MaildirError('MAILDIR_WRITE_FAILED', `delivery into ${dir} failed`, { cause: e });
  }
}

/**
 * Iterates a message source. A Readable's default iterator destroys the stream when a loop exits
 * early; this one leaves it to the caller (smtp-server drains an unread DATA stream itself).
 */
export function iterateMessage(source: MessageSource): AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> {
  if (typeof (source as Readable).iterator === 'function') return (source as Readable).iterator({ destroyOnReturn: false });
  return source as AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;
}

const CRLF = Buffer.from('\r\n');

/**
 * Streaming CRLF → LF. A CR at the end of a chunk is held back until the next chunk shows whether
 * an LF follows; a CR not followed by LF is kept. Call with `undefined` at the end to flush.
 */
function crlfToLf(): (chunk: Buffer | undefined) => Buffer {
  let heldCr = false;
  return (chunk) => {
    if (chunk === undefined) return heldCr ? ((heldCr = false), Buffer.from('\r')) : Buffer.alloc(0);
    const input = heldCr ? Buffer.concat([Buffer.from('\r'), chunk]) : chunk;
    heldCr = input.length > 0 && input[input.length - 1] === 0x0d;
    const end = heldCr ? input.length - 1 : input.length;
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = input.indexOf(CRLF, 0); at >= 0 && at < end; at = input.indexOf(CRLF, from)) {
      parts.push(input.subarray(from, at));
      from = at + 1; // keep the LF
    }
    parts.push(input.subarray(from, end));
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  };
}
