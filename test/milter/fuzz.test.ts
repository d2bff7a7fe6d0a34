/**
 * Bounded fuzzing of codec + commands + session: random and mutated frames (the captured
 * Postfix/Sendmail streams are the seed corpus), arbitrary chunking, random handler verdicts
 * including invalid ones and throws. Proves: nothing but MilterProtocolError ever comes out,
 * every session step settles, the decoder never holds more than 4 + maxFrameLength bytes, and
 * every step that expects a reply carries exactly one verdict (none otherwise).
 * At least FRAMES frames per run, stopped by count and by a time budget (seed in the test name).
 */
import { describe, expect, it } from 'vitest';
import { FrameDecoder, encodeFrame } from '../../adapters/milter/codec.js';
import { decodeCommand, type MilterCommand } from '../../adapters/milter/commands.js';
import { SMFI_CURR_ACTS } from '../../adapters/milter/constants.js';
import { MilterProtocolError } from '../../adapters/milter/errors.js';
import type { MilterEvent } from '../../adapters/milter/negotiate.js';
import { FINAL_REPLY_KINDS, encodeReply } from '../../adapters/milter/replies.js';
import { MilterSession } from '../../adapters/milter/session.js';
import type { EomResult, MilterAction, MilterHandler, Modification } from '../../adapters/milter/types.js';
import { fixtureNames, loadFixture, recordingLogger } from './helpers.js';

const FRAMES = 100_000;
const BUDGET_MS = 25_000; // ~3 s alone; the bound is against a hang, not a speed claim (loaded CI machines are slower)
const MAX_FRAME = 4096; // small, so oversized lengths are common
const SEED = Number(process.env.MILTER_FUZZ_SEED ?? 0x6d696c74);

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = rng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;

/** The MTA side of every capture, one stream per conversation. */
const streams: Buffer[][] = fixtureNames().map((n) =>
  loadFixture(n)
    .filter((p) => p.from === 'mta')
    .map((p) => p.bytes),
);
const corpus: Buffer[] = streams.flat().filter((b) => b.length <= MAX_FRAME);
const COMMAND_BYTES = [...'ABCDEHKLMNOQRTU'].map((c) => c.charCodeAt(0));

function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}

function mutate(src: Buffer): Buffer {
  const b = Buffer.from(src);
  switch (int(8)) {
    case 0: // flip bits
      for (let i = int(4) + 1; i > 0; i--) {
        const at = int(b.length);
        b[at] = (b[at] as number) ^ (1 << int(8));
      }
      return b;
    case 1: // corrupt the length field
      b.writeUInt32BE(pick([0, 1, 2, 0xffffffff, MAX_FRAME + 1, int(MAX_FRAME * 2), b.length - 4 + int(3) - 1].map((x) => Math.max(0, x) >>> 0)), 0);
      return b;
    case 2: // truncate
      return b.subarray(0, int(b.length));
    case 3: // insert garbage
      return Buffer.concat([b.subarray(0, 5), randomBytes(int(16)), b.subarray(5)]);
    case 4: // drop or duplicate NULs
      return Buffer.from(b.toString('latin1').replace(/\0/g, () => pick(['', '\0\0', '\0'])), 'latin1');
    case 5: // swap the command byte, fix the length
      return encodeFrame(pick(COMMAND_BYTES), b.subarray(5));
    case 6: // random frame with a valid length
      return encodeFrame(rand() < 0.8 ? pick(COMMAND_BYTES) : int(256), randomBytes(int(64)));
    default: // untouched
      return b;
  }
}

const VERDICTS: readonly MilterAction[] = [
  { kind: 'continue' },
  { kind: 'continue' },
  { kind: 'continue' },
  { kind: 'accept' },
  { kind: 'reject' },
  { kind: 'tempfail' },
  { kind: 'discard' },
  { kind: 'skip' },
  { kind: 'quarantine', reason: 'q' },
  { kind: 'reject', reply: { code: 550, enhanced: '5.7.1', text: ['a 100%', 'b'] } },
  { kind: 'tempfail', reply: { code: 421, enhanced: '4.7.0', text: 'bye' } },
  { kind: 'reject', reply: { code: 451, text: 'wrong class' } },
  { kind: 'nonsense' } as unknown as MilterAction,
];
const MODS: readonly Modification[] = [
  { kind: 'addHeader', name: 'X-F', value: 'v' },
  { kind: 'changeHeader', index: 1, name: 'X-F', value: '' },
  { kind: 'insertHeader', index: 0, name: 'X-F', value: 'a\n\tb' },
  { kind: 'addHeader', name: 'Bad:Name', value: 'v' },
  { kind: 'replaceBody', body: Buffer.alloc(70000) },
  { kind: 'progress' },
];

function verdict(): MilterAction {
  if (rand() < 0.03) throw new Error('handler bug');
  return pick(VERDICTS);
}

function fuzzHandler(): MilterHandler {
  return {
    connect: verdict,
    helo: verdict,
    mail: verdict,
    rcpt: verdict,
    data: verdict,
    header: verdict,
    eoh: verdict,
    body: verdict,
    unknown: verdict,
    eom: (): EomResult => ({ modifications: Array.from({ length: int(3) }, () => pick(MODS)), action: verdict() }),
    abort: () => undefined,
    close: () => undefined,
  };
}

const EVENT_OF: Partial<Record<MilterCommand['kind'], MilterEvent>> = {
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

describe('milter fuzz', () => {
  it(`survives ≥ ${FRAMES} random and mutated frames (seed ${SEED})`, { timeout: 60_000 }, async () => {
    const start = Date.now();
    let frames = 0;
    let protocolErrors = 0;
    let replies = 0;
    let sessions = 0;
    const failures: string[] = [];
    while (frames < FRAMES && Date.now() - start < BUDGET_MS) {
      sessions++;
      const decoder = new FrameDecoder({ maxFrameLength: MAX_FRAME });
      const session = new MilterSession({
        createHandler: fuzzHandler,
        logger: recordingLogger(),
        maxFrameLength: MAX_FRAME,
        needs: { optionalActions: SMFI_CURR_ACTS, noReply: rand() < 0.3 ? ['header', 'rcpt'] : [], headerLeadingSpace: rand() < 0.5 },
      });
      // A real conversation with a few packets mutated, dropped, duplicated or inserted.
      const parts: Buffer[] = [];
      for (const pkt of pick(streams)) {
        const x = rand();
        if (x < 0.03) parts.push(mutate(pkt));
        else if (x < 0.04) continue;
        else if (x < 0.05) parts.push(pkt, pkt);
        else if (x < 0.06) parts.push(pick(corpus), pkt);
        else parts.push(pkt);
      }
      const wire = Buffer.concat(parts);
      let pos = 0;
      let dead = false;
      while (pos < wire.length && !dead) {
        const n = 1 + int(rand() < 0.5 ? 8 : 3000);
        const r = decoder.push(wire.subarray(pos, pos + n));
        pos += n;
        if (decoder.bufferedBytes > 4 + MAX_FRAME) failures.push(`decoder holds ${decoder.bufferedBytes} bytes`);
        for (const f of r.frames) {
          frames++;
          const cmd = decodeCommand(f);
          if (cmd instanceof MilterProtocolError) {
            protocolErrors++;
            dead = true;
            break;
          }
          const step = await session.handle(cmd);
          if (step.error !== undefined) {
            if (!(step.error instanceof MilterProtocolError) || !step.close) failures.push(`bad error step for ${cmd.kind}`);
            protocolErrors++;
            dead = true;
            break;
          }
          for (const rep of step.replies) encodeReply(rep); // never an unencodable reply
          replies += step.replies.length;
          const finals = step.replies.filter((x) => FINAL_REPLY_KINDS.has(x.kind)).length;
          const ev = EVENT_OF[cmd.kind];
          const n2 = session.negotiated;
          const expected = cmd.kind === 'optneg' || cmd.kind === 'eom' ? 1 : ev === undefined || n2 === undefined || n2.noReply.has(ev) ? 0 : 1;
          if (finals !== expected) failures.push(`${cmd.kind}: ${finals} verdicts, expected ${expected}`);
          if (step.close) {
            dead = true;
            break;
          }
        }
        if (r.error !== undefined) {
          if (!(r.error instanceof MilterProtocolError)) failures.push('decoder error of the wrong class');
          protocolErrors++;
          dead = true;
        }
      }
      if (!dead) {
        const e = decoder.end();
        if (e !== undefined && !(e instanceof MilterProtocolError)) failures.push('end() error of the wrong class');
      }
      await session.end();
    }
    const ms = Date.now() - start;
    console.log(`milter fuzz: ${frames} frames, ${sessions} sessions, ${protocolErrors} protocol errors, ${replies} replies in ${ms} ms (seed ${SEED})`);
    expect(failures.slice(0, 10)).toEqual([]);
    expect(frames).toBeGreaterThanOrEqual(FRAMES);
    expect(protocolErrors).toBeGreaterThan(0);
    expect(replies).toBeGreaterThan(0);
  });

  it('pure random bytes never make the decoder throw or over-buffer', () => {
    const d = new FrameDecoder({ maxFrameLength: MAX_FRAME });
    let errors = 0;
    for (let i = 0; i < 20_000; i++) {
      const r = (errors > 0 ? new FrameDecoder({ maxFrameLength: MAX_FRAME }) : d).push(randomBytes(int(32)));
      for (const f of r.frames) {
        const c = decodeCommand(f);
        expect(c instanceof MilterProtocolError || typeof c.kind === 'string').toBe(true);
      }
      if (r.error !== undefined) errors++;
    }
    expect(errors).toBeGreaterThan(0);
  });
});
