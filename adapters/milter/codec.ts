/**
 * Milter packet framing (adapters/spec/milter-v6.md §2): `uint32 len` (big-endian, counts the
 * command byte) + `char cmd` + `len − 1` data bytes. Pure and total: the decoder accepts any
 * chunking of any byte stream, never throws, and never holds more than
 * `MILTER_LEN_BYTES + maxFrameLength` bytes — the length field is checked before anything is
 * allocated for it (never `make([]byte, length)` from an untrusted length, then index it).
 */
import { MILTER_LEN_BYTES, MILTER_MDS_1M, commandName } from './constants.js';
import { MilterProtocolError, MilterUsageError } from './errors.js';

/**
 * Default largest accepted value of the length field: 1 MiB, i.e. 1 MiB − 1 data bytes, the
 * largest size any MTA negotiates (Sendmail `SMFIP_MDS_1M`). Postfix's 100 KiB
 * `header_size_limit` and 64 KiB body chunks fit well inside.
 */
export const DEFAULT_MAX_FRAME_LENGTH = MILTER_MDS_1M + 1;

/** One packet: the command (or reply) byte and its data, without the length prefix. */
export interface Frame {
  readonly command: number;
  /** The `len − 1` data bytes. May share memory with the chunk passed to `push`. */
  readonly data: Buffer;
}

/** What one `push` produced: every complete frame, then the error that stopped decoding, if any. */
export interface DecodeResult {
  readonly frames: readonly Frame[];
  /** Set once the stream is unusable; every later `push` returns it again with no frames. */
  readonly error: MilterProtocolError | undefined;
}

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest accepted length field (command byte + data). Default {@link DEFAULT_MAX_FRAME_LENGTH}. */
  readonly maxFrameLength?: number;
}

/**
 * Incremental frame decoder over arbitrary chunk boundaries. Several frames per chunk and one
 * frame over many chunks are both normal (the MTA pipelines under `SMFIP_NR_*`).
 */
export class FrameDecoder {
  readonly maxFrameLength: number;
  // Partial length prefix (fewer than 4 bytes seen yet).
  private readonly head = Buffer.alloc(MILTER_LEN_BYTES);
  private headFill = 0;
  // Body of the current frame once its length is known: exactly `len` bytes (cmd + data).
  private body: Buffer | undefined;
  private bodyFill = 0;
  private failed: MilterProtocolError | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH;
    if (!Number.isSafeInteger(max) || max < 1 || max > 0xffffffff) {
      throw new MilterUsageError('MILTER_OPTION_INVALID', `maxFrameLength must be an integer in 1..2^32-1, got ${max}`);
    }
    this.maxFrameLength = max;
  }

  /** Bytes held for an incomplete frame; never more than `MILTER_LEN_BYTES + maxFrameLength`. */
  get bufferedBytes(): number {
    return this.headFill + this.bodyFill;
  }

  /** The error that stopped decoding, if any. */
  get error(): MilterProtocolError | undefined {
    return this.failed;
  }

  /** Feed the next bytes of the stream. */
  push(chunk: Uint8Array): DecodeResult {
    if (this.failed !== undefined) return { frames: [], error: this.failed };
    const input = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const frames: Frame[] = [];
    let pos = 0;
    while (pos < input.length) {
      if (this.body === undefined) {
        // Fast path: a whole frame lies inside this chunk — no copy.
        if (this.headFill === 0 && input.length - pos >= MILTER_LEN_BYTES) {
          const len = input.readUInt32BE(pos);
          const bad = this.checkLength(len);
          if (bad !== undefined) return this.fail(frames, bad);
          if (input.length - pos - MILTER_LEN_BYTES >= len) {
            const start = pos + MILTER_LEN_BYTES;
            frames.push({ command: input[start] as number, data: input.subarray(start + 1, start + len) });
            pos = start + len;
            continue;
          }
          this.body = Buffer.allocUnsafe(len);
          this.bodyFill = 0;
          pos += MILTER_LEN_BYTES;
          continue;
        }
        const take = Math.min(MILTER_LEN_BYTES - this.headFill, input.length - pos);
        input.copy(this.head, this.headFill, pos, pos + take);
        this.headFill += take;
        pos += take;
        if (this.headFill < MILTER_LEN_BYTES) break;
        const len = this.head.readUInt32BE(0);
        const bad = this.checkLength(len);
        if (bad !== undefined) return this.fail(frames, bad);
        this.headFill = 0;
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
        continue;
      }
      const take = Math.min(this.body.length - this.bodyFill, input.length - pos);
      input.copy(this.body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill === this.body.length) {
        frames.push({ command: this.body[0] as number, data: this.body.subarray(1) });
        this.body = undefined;
        this.bodyFill = 0;
      }
    }
    return { frames, error: undefined };
  }

  /**
   * The stream ended. Returns `MILTER_FRAME_TRUNCATED` if it ended inside a frame (EOF between
   * frames is a normal close), otherwise the earlier error, if any.
   */
  end(): MilterProtocolError | undefined {
    if (this.failed !== undefined) return this.failed;
    if (this.headFill > 0 || this.body !== undefined) {
      const have = this.headFill > 0 ? `${this.headFill} of ${MILTER_LEN_BYTES} length bytes` : `${this.bodyFill} of ${this.body?.length ?? 0} bytes`;
      this.failed = new MilterProtocolError('MILTER_FRAME_TRUNCATED', `stream ended inside a packet (${have})`);
      this.headFill = 0;
      this.body = undefined;
      this.bodyFill = 0;
    }
    return this.failed;
  }

  private checkLength(len: number): MilterProtocolError | undefined {
    if (len === 0) return new MilterProtocolError('MILTER_FRAME_EMPTY', 'packet length 0 (no command byte)');
    if (len > this.maxFrameLength) {
      return new MilterProtocolError('MILTER_FRAME_TOO_LARGE', `packet length ${len} exceeds the limit of ${this.maxFrameLength}`);
    }
    return undefined;
  }

  private fail(frames: Frame[], error: MilterProtocolError): DecodeResult {
    this.failed = error;
    this.headFill = 0;
    this.body = undefined;
    this.bodyFill = 0;
    return { frames, error };
  }
}

/** Encode one packet. `data` defaults to empty; its length must keep `len` within 32 bits. */
export function encodeFrame(command: number, data: Uint8Array = EMPTY): Buffer {
  if (!Number.isInteger(command) || command < 0 || command > 0xff) throw new MilterUsageError('MILTER_OPTION_INVALID', `command byte out of range: ${command}`);
  if (data.length + 1 > 0xffffffff) throw new MilterUsageError('MILTER_OPTION_INVALID', 'packet data too long for a 32-bit length');
  const out = Buffer.allocUnsafe(MILTER_LEN_BYTES + 1 + data.length);
  out.writeUInt32BE(data.length + 1, 0);
  out[MILTER_LEN_BYTES] = command;
  out.set(data, MILTER_LEN_BYTES + 1);
  return out;
}

/** Human-readable one-line description of a frame for trace logs (never includes data). */
export function describeFrame(frame: Frame): string {
  return `${commandName(frame.command)} (${frame.data.length} bytes)`;
}

const EMPTY = new Uint8Array(0);
