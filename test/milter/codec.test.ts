import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_FRAME_LENGTH, FrameDecoder, encodeFrame, type Frame } from '../../adapters/milter/codec.js';
import { MilterProtocolError, MilterUsageError } from '../../adapters/milter/errors.js';
import { hex } from './helpers.js';

const stream = Buffer.concat([
  hex('0000000d 4f 00000006000001ff001fffff'), // OPTNEG
  hex('00000002 44 48'), // empty MACRO for HELO
  hex('00000014 48 636c69656e742e6578616d706c652e6e657400'), // HELO client.example.net
  hex('00000001 41'), // ABORT
  hex('00000007 42 626f64790d0a'), // BODY "body\r\n"
]);
const expected: Frame[] = [
  { command: 0x4f, data: hex('00000006000001ff001fffff') },
  { command: 0x44, data: hex('48') },
  { command: 0x48, data: hex('636c69656e742e6578616d706c652e6e657400') },
  { command: 0x41, data: Buffer.alloc(0) },
  { command: 0x42, data: hex('626f64790d0a') },
];

function feed(d: FrameDecoder, chunks: Buffer[]): { frames: Frame[]; error: MilterProtocolError | undefined } {
  const frames: Frame[] = [];
  let error: MilterProtocolError | undefined;
  for (const c of chunks) {
    const r = d.push(c);
    frames.push(...r.frames);
    error ??= r.error;
  }
  return { frames, error };
}

const norm = (fs: readonly Frame[]): [number, string][] => fs.map((f) => [f.command, f.data.toString('hex')]);

describe('FrameDecoder', () => {
  it('decodes several frames from one chunk', () => {
    const r = new FrameDecoder().push(stream);
    expect(r.error).toBeUndefined();
    expect(norm(r.frames)).toEqual(norm(expected));
  });

  it('gives the same frames for every split point and byte-by-byte input', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = feed(new FrameDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(norm(r.frames), `cut at ${cut}`).toEqual(norm(expected));
    }
    const bytes = [...stream].map((b) => Buffer.from([b]));
    const d = new FrameDecoder();
    const r = feed(d, bytes);
    expect(norm(r.frames)).toEqual(norm(expected));
    expect(d.bufferedBytes).toBe(0);
  });

  it('refuses a zero length and stays failed', () => {
    const d = new FrameDecoder();
    const r = d.push(Buffer.concat([hex('00000001 63'), hex('00000000')]));
    expect(r.frames).toHaveLength(1); // frames before the error are kept
    expect(r.error?.code).toBe('MILTER_FRAME_EMPTY');
    expect(d.push(hex('00000001 63'))).toEqual({ frames: [], error: r.error });
    expect(d.end()).toBe(r.error);
  });

  it('refuses a length above the limit before allocating anything for it', () => {
    const d = new FrameDecoder();
    const r = d.push(hex('ffffffff 4f'));
    expect(r.error?.code).toBe('MILTER_FRAME_TOO_LARGE');
    expect(d.bufferedBytes).toBe(0);
    // split header: the check happens once the four length bytes are known
    const d2 = new FrameDecoder({ maxFrameLength: 100 });
    expect(d2.push(hex('0000')).error).toBeUndefined();
    expect(d2.push(hex('0065')).error?.code).toBe('MILTER_FRAME_TOO_LARGE');
  });

  it('accepts exactly the limit', () => {
    const d = new FrameDecoder({ maxFrameLength: 10 });
    expect(d.push(encodeFrame(0x42, Buffer.alloc(9))).frames).toHaveLength(1);
    expect(d.push(encodeFrame(0x42, Buffer.alloc(10))).error?.code).toBe('MILTER_FRAME_TOO_LARGE');
  });

  it('defaults to at least 1 MiB and takes a 1 MiB − 1 data packet (Sendmail MDS_1M)', () => {
    expect(DEFAULT_MAX_FRAME_LENGTH).toBeGreaterThanOrEqual(1024 * 1024);
    const big = encodeFrame(0x42, Buffer.alloc(1024 * 1024 - 1, 0x61));
    const r = feed(new FrameDecoder(), [big.subarray(0, 70000), big.subarray(70000)]);
    expect(r.error).toBeUndefined();
    expect(r.frames[0]?.data.length).toBe(1024 * 1024 - 1);
  });

  it('reports a stream that ends inside a frame, and not one that ends between frames', () => {
    const d = new FrameDecoder();
    d.push(hex('0000000d 4f 0000'));
    expect(d.bufferedBytes).toBe(3);
    expect(d.end()?.code).toBe('MILTER_FRAME_TRUNCATED');
    const d2 = new FrameDecoder();
    d2.push(hex('0000'));
    expect(d2.end()?.code).toBe('MILTER_FRAME_TRUNCATED');
    const d3 = new FrameDecoder();
    d3.push(stream);
    expect(d3.end()).toBeUndefined();
  });

  it('never buffers more than the length prefix plus the frame limit', () => {
    const max = 1000;
    const d = new FrameDecoder({ maxFrameLength: max });
    const frame = encodeFrame(0x42, Buffer.alloc(max - 1));
    for (let i = 0; i < frame.length; i += 7) {
      d.push(frame.subarray(i, i + 7));
      expect(d.bufferedBytes).toBeLessThanOrEqual(4 + max);
    }
    expect(d.bufferedBytes).toBe(0);
  });

  it('rejects nonsense limits with a coded error', () => {
    expect(() => new FrameDecoder({ maxFrameLength: 0 })).toThrow(MilterUsageError);
    expect(() => new FrameDecoder({ maxFrameLength: 2 ** 32 })).toThrow(MilterUsageError);
  });
});

describe('encodeFrame', () => {
  it('writes the big-endian length that counts the command byte', () => {
    expect(encodeFrame(0x63).toString('hex')).toBe('0000000163');
    expect(encodeFrame(0x68, Buffer.from('ab')).toString('hex')).toBe('00000003686162');
  });
  it('refuses a command byte outside 0..255', () => {
    expect(() => encodeFrame(256)).toThrow(MilterUsageError);
  });
});
