import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, ReplyDecoder, RequestDecoder, encodeAction, encodeRequest } from '../../adapters/postfix-policy/codec.js';
import { PolicyProtocolError } from '../../adapters/postfix-policy/errors.js';
import { int, rng } from '../helpers/fuzz.js';
import { CAPTURES, fixtureDir } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const decodeAll = (bytes: Buffer, limits = {}): { requests: Map<string, string>[]; error?: PolicyProtocolError } => {
  const d = new RequestDecoder(limits);
  const r = d.push(bytes);
  return { requests: r.requests.map((q) => new Map(q)), ...(r.error === undefined ? {} : { error: r.error }) };
};

describe('RequestDecoder', () => {
  it('decodes attribute lines ending in an empty line, several requests back to back', () => {
    const r = decodeAll(b('request=smtpd_access_policy\nprotocol_state=RCPT\n\nrequest=x\n\n'));
    expect(r.error).toBeUndefined();
    expect(r.requests).toEqual([new Map([['request', 'smtpd_access_policy'], ['protocol_state', 'RCPT']]), new Map([['request', 'x']])]);
  });

  it('keeps everything after the first "=" (and CR) as the value; a repeated name keeps its last value', () => {
    const [q] = decodeAll(b('a=b=c\nx=1\nx=2\ncr=v\r\nempty=\n\n')).requests;
    expect(q).toEqual(new Map([['a', 'b=c'], ['x', '2'], ['cr', 'v\r'], ['empty', '']]));
  });

  it('decodes UTF-8, and an invalid sequence to U+FFFD rather than closing the connection', () => {
    const [q] = decodeAll(Buffer.concat([b('sender=j'), Buffer.from('ö', 'utf8'), b('rg\nbad=\xe9\n\n')])).requests;
    expect(q?.get('sender')).toBe('jörg');
    expect(q?.get('bad')).toBe('\ufffd');
  });

  it('gives the same requests however the bytes are split (every capture, every split point of the first 300 bytes)', () => {
    for (const c of CAPTURES) {
      const bytes = readFileSync(join(fixtureDir, `postfix-${c}.policy`));
      const whole = decodeAll(bytes).requests;
      expect(whole.length, c).toBeGreaterThan(0);
      for (let cut = 1; cut < Math.min(300, bytes.length); cut += 7) {
        const d = new RequestDecoder();
        const got = [...d.push(bytes.subarray(0, cut)).requests, ...d.push(bytes.subarray(cut)).requests].map((q) => new Map(q));
        expect(got, `${c} cut ${cut}`).toEqual(whole);
        expect(d.pending).toBe(false);
      }
    }
  });

  it('tracks a request in progress (pending) and reports one cut short at the end', () => {
    const d = new RequestDecoder();
    expect(d.pending).toBe(false);
    d.push(b('request=smtpd'));
    expect(d.pending).toBe(true);
    d.push(b('_access_policy\n'));
    expect(d.pending).toBe(true);
    expect(d.end()).toMatchObject({ code: 'POLICY_REQUEST_TRUNCATED' });
    const clean = new RequestDecoder();
    clean.push(b('a=1\n\n'));
    expect(clean.end()).toBeUndefined();
  });

  it.each([
    ['no "="', 'request\n\n', 'POLICY_ATTRIBUTE_MALFORMED'],
    ['an empty name', '=value\n\n', 'POLICY_ATTRIBUTE_MALFORMED'],
    ['a NUL byte', 'a=b\0c\n\n', 'POLICY_NUL_BYTE'],
    ['an empty request', '\n', 'POLICY_REQUEST_EMPTY'],
    ['binary garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n', 'POLICY_NUL_BYTE'],
    ['an HTTP request', 'GET / HTTP/1.1\nHost: x\n\n', 'POLICY_ATTRIBUTE_MALFORMED'],
  ])('refuses %s with a protocol error, then decodes nothing more', (_what, input, code) => {
    const d = new RequestDecoder();
    const r = d.push(b(input));
    expect(r.error).toBeInstanceOf(PolicyProtocolError);
    expect(r.error?.code).toBe(code);
    expect(d.push(b('a=1\n\n')).requests).toEqual([]);
    expect(d.pending).toBe(false);
  });

  it('returns the requests completed before the bad byte', () => {
    const r = decodeAll(b('a=1\n\nb=2\n\ngarbage\n'));
    expect(r.requests).toEqual([new Map([['a', '1']]), new Map([['b', '2']])]);
    expect(r.error?.code).toBe('POLICY_ATTRIBUTE_MALFORMED');
  });

  it('bounds a line: exactly the limit passes, one byte more fails before the LF arrives', () => {
    const limits = { maxLineBytes: 64 };
    expect(decodeAll(b(`a=${'x'.repeat(62)}\n\n`), limits).error).toBeUndefined();
    const d = new RequestDecoder(limits);
    expect(d.push(b(`a=${'x'.repeat(40)}`)).error).toBeUndefined();
    expect(d.push(b('x'.repeat(23))).error?.code).toBe('POLICY_LINE_TOO_LONG');
  });

  it('bounds the number of attributes and the size of a request, per request (not per connection)', () => {
    expect(decodeAll(b('a=1\nb=2\nc=3\n\n'), { maxAttributes: 3 }).error).toBeUndefined();
    expect(decodeAll(b('a=1\nb=2\nc=3\nd=4\n\n'), { maxAttributes: 3 }).error?.code).toBe('POLICY_TOO_MANY_ATTRIBUTES');
    // 4 lines of 4 bytes + the empty line = 17 bytes.
    const limits = { maxRequestBytes: 17 };
    expect(decodeAll(b('a=1\nb=2\nc=3\nd=4\n\n'.repeat(50)), limits)).toMatchObject({ requests: { length: 50 } });
    expect(decodeAll(b('a=1\nb=2\nc=3\nd=45\n\n'), limits).error?.code).toBe('POLICY_REQUEST_TOO_LARGE');
  });

  it('defaults: a real request is far inside them', () => {
    const bytes = readFileSync(join(fixtureDir, 'postfix-tls-trusted.policy'));
    const longest = Math.max(...bytes.toString('latin1').split('\n').map((l) => l.length));
    expect(longest).toBeLessThan(DEFAULT_LIMITS.maxLineBytes / 4);
  });

  it('fuzz: mutated captures fed in random pieces never throw; every request is within the bounds (bounded: count and time)', () => {
    const rand = rng(20261201);
    const seeds = CAPTURES.map((c) => readFileSync(join(fixtureDir, `postfix-${c}.policy`)));
    const limits = { maxLineBytes: 256, maxAttributes: 40, maxRequestBytes: 4096 };
    const stop = Date.now() + 2_000;
    let runs = 0;
    for (; runs < 5_000 && Date.now() < stop; runs++) {
      const seed = seeds[runs % seeds.length] as Buffer;
      const bytes = Buffer.from(seed);
      for (let edits = 1 + int(rand, 4); edits > 0; edits--) bytes[int(rand, bytes.length - 1)] = runs % 3 === 0 ? int(rand, 255) : pick3(rand);
      const d = new RequestDecoder(limits);
      let at = 0;
      while (at < bytes.length) {
        const n = 1 + int(rand, 600);
        const r = d.push(bytes.subarray(at, at + n));
        at += n;
        for (const q of r.requests) if (q.size === 0 || q.size > limits.maxAttributes) throw new Error(`run ${runs}: a request of ${q.size} attributes`);
        if (r.error !== undefined) {
          if (!(r.error instanceof PolicyProtocolError)) throw new Error(`run ${runs}: ${String(r.error)}`);
          break;
        }
      }
      d.end();
    }
    expect(runs).toBeGreaterThan(1_000);
  });
});

/** A byte likely to matter to the framing: LF, NUL, "=", CR or a high byte. */
function pick3(rand: () => number): number {
  return [0x0a, 0x00, 0x3d, 0x0d, 0xff][int(rand, 4)] as number;
}

describe('encodeAction / encodeRequest / ReplyDecoder', () => {
  it('frames an action as one line and an empty line', () => {
    expect(encodeAction('OK').toString()).toBe('action=OK\n\n');
    expect(encodeAction('550 5.7.54 Unable to relay').toString()).toBe('action=550 5.7.54 Unable to relay\n\n');
  });

  it.each(['', 'a\nb', 'a\rb', 'a\0b'])('refuses an action that cannot be framed: %j', (a) => {
    expect(() => encodeAction(a)).toThrow(TypeError);
  });

  it('encodes a request our decoder reads back; refuses names and values that cannot be framed', () => {
    const attrs = { request: 'smtpd_access_policy', recipient: 'a=b@x', empty: '' };
    expect(new Map(new RequestDecoder().push(encodeRequest(attrs)).requests[0])).toEqual(new Map(Object.entries(attrs)));
    expect(() => encodeRequest({ 'a=b': 'x' })).toThrow(TypeError);
    expect(() => encodeRequest({ a: 'x\ny' })).toThrow(TypeError);
    expect(() => encodeRequest({})).toThrow(TypeError);
  });

  it('decodes replies split anywhere; anything but action= is malformed', () => {
    const d = new ReplyDecoder();
    expect(d.push(b('action=OK\n')).actions).toEqual([]);
    expect(d.push(b('\naction=DUNNO\n\nact')).actions).toEqual(['OK', 'DUNNO']);
    expect(d.push(b('ion=451 4.3.0 x\n\n')).actions).toEqual(['451 4.3.0 x']);
    expect(new ReplyDecoder().push(b('hello\n\n')).error?.code).toBe('POLICY_REPLY_MALFORMED');
    expect(new ReplyDecoder(16).push(b('action=' + 'x'.repeat(40))).error?.code).toBe('POLICY_REPLY_MALFORMED');
  });
});
