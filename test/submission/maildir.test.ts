import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { deliverToMaildir, MaildirError } from '../../adapters/submission/maildir.js';
import { makeRunDir } from '../peers/harness.js';

const root = await makeRunDir('maildir');
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(root, `md${++n}`);
const ls = (d: string, sub: string): string[] => readdirSync(join(d, sub));
const MSG = 'From: a@example.test\r\nSubject: hi\r\n\r\nline one\r\n.leading dot stays\r\nbare\rcr stays\r\n';

describe('deliverToMaildir', () => {
  it('creates the Maildir, writes LF lines with Return-Path, and leaves tmp/ empty', async () => {
    const d = fresh();
    const r = await deliverToMaildir(d, [MSG.slice(0, 17), MSG.slice(17, 40), MSG.slice(40)], { maxBytes: 10_000, returnPath: 'a@example.test', hostname: 'mx:1/a' });
    expect(ls(d, 'tmp')).toEqual([]);
    expect(ls(d, 'cur')).toEqual([]);
    expect(ls(d, 'new')).toEqual([r.name]);
    expect(r.name).toMatch(/^\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.mx\\0721\\057a,S=\d+$/);
    const body = readFileSync(r.path, 'utf8');
    expect(body).toBe('Return-Path: <a@example.test>\n' + MSG.replace(/\r\n/g, '\n'));
    expect(r.name.endsWith(`,S=${Buffer.byteLength(body)}`)).toBe(true);
    expect(r.bytes).toBe(Buffer.byteLength(body));
    expect(statSync(r.path).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, 'new')).mode & 0o777).toBe(0o700);
  });

  it('handles a CRLF split across chunks, and keeps bytes as received with crlf', async () => {
    const d = fresh();
    const parts = ['a\r', '\nb\r', '\r', '\n', 'c\r'];
    const lf = await deliverToMaildir(d, parts, { maxBytes: 100 });
    expect(readFileSync(lf.path, 'latin1')).toBe('a\nb\r\nc\r');
    const raw = await deliverToMaildir(d, [Buffer.from([0xff, 0x0d]), Buffer.from([0x0a])], { maxBytes: 100, lineEndings: 'crlf', returnPath: '' });
    expect(readFileSync(raw.path)).toEqual(Buffer.concat([Buffer.from('Return-Path: <>\r\n'), Buffer.from([0xff, 0x0d, 0x0a])]));
  });

  it('streams: writes as it reads, and nothing is in new/ until it is complete', async () => {
    const d = fresh();
    const chunk = Buffer.alloc(256 * 1024, 'x');
    const count = 64; // 16 MiB
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < count; i++) {
        if (i > 2) {
          // Pull-driven: by the time chunk i is asked for, the earlier ones are on disk.
          const tmp = ls(d, 'tmp');
          expect(tmp).toHaveLength(1);
          expect(statSync(join(d, 'tmp', tmp[0] ?? '')).size).toBeGreaterThanOrEqual((i - 1) * chunk.length);
          expect(ls(d, 'new')).toEqual([]);
        }
        yield chunk;
      }
    }
    const r = await deliverToMaildir(d, source(), { maxBytes: count * chunk.length });
    expect(r.bytes).toBe(count * chunk.length);
    expect(ls(d, 'tmp')).toEqual([]);
  });

  it('concurrent deliveries get unique names and intact contents', async () => {
    const d = fresh();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => deliverToMaildir(d, [`Message-ID: <${i}@t>\r\n`, '\r\n', `body ${i}\r\n`.repeat(100)], { maxBytes: 1e6 })),
    );
    const names = ls(d, 'new');
    expect(new Set(names).size).toBe(50);
    expect(new Set(results.map((r) => r.name))).toEqual(new Set(names));
    for (const [i, r] of results.entries()) expect(readFileSync(r.path, 'utf8')).toBe(`Message-ID: <${i}@t>\n\n${`body ${i}\n`.repeat(100)}`);
  });

  it('refuses a message over maxBytes: nothing delivered, the Readable left undestroyed for the caller to drain', async () => {
    const d = fresh();
    const src = new PassThrough();
    const p = deliverToMaildir(d, src, { maxBytes: 1000 });
    src.write(Buffer.alloc(600));
    src.write(Buffer.alloc(600));
    const e = await p.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MaildirError);
    expect(e).toMatchObject({ code: 'MAILDIR_TOO_LARGE', reply: { code: 552, enhanced: '5.3.4' } });
    expect(src.destroyed).toBe(false);
    src.end(Buffer.alloc(10));
    src.resume();
    await new Promise((res) => src.once('end', res));
    expect(ls(d, 'tmp')).toEqual([]);
    expect(ls(d, 'new')).toEqual([]);
  });

  it('a source that dies mid-message (client gone) delivers nothing and removes the temp file', async () => {
    const d = fresh();
    for (const kill of [(s: PassThrough) => s.destroy(), (s: PassThrough) => s.destroy(Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' }))]) {
      const src = new PassThrough();
      const p = deliverToMaildir(d, src, { maxBytes: 1e6 });
      src.write('Subject: partial\r\n\r\nhalf a mess');
      // The temp file exists once the first chunk is being written (bounded wait: the VM may be busy).
      const tmpCount = (): number => (existsSync(join(d, 'tmp')) ? ls(d, 'tmp').length : 0);
      for (let i = 0; i < 500 && tmpCount() === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(ls(d, 'tmp')).toHaveLength(1);
      kill(src);
      await expect(p).rejects.toMatchObject({ code: 'MAILDIR_SOURCE_FAILED', reply: { code: 451, enhanced: '4.3.0' } });
      expect(ls(d, 'tmp')).toEqual([]);
      expect(ls(d, 'new')).toEqual([]);
    }
  });

  it('an unusable Maildir path is MAILDIR_UNAVAILABLE with a 451', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    await expect(deliverToMaildir(file, ['x'], { maxBytes: 10 })).rejects.toMatchObject({ code: 'MAILDIR_UNAVAILABLE', reply: { code: 451 } });
    await expect(deliverToMaildir(join(file, 'sub'), ['x'], { maxBytes: 10 })).rejects.toMatchObject({ code: 'MAILDIR_UNAVAILABLE' });
  });

  it('new/ in the way (a file) is MAILDIR_UNAVAILABLE', async () => {
    const d = fresh();
    mkdirSync(join(d, 'tmp'), { recursive: true });
    writeFileSync(join(d, 'new'), 'not a dir');
    await expect(deliverToMaildir(d, ['x'], { maxBytes: 10 })).rejects.toMatchObject({ code: 'MAILDIR_UNAVAILABLE' });
    expect(ls(d, 'tmp')).toEqual([]);
  });

  it('a rename into new/ that fails (new/ on another file system: EXDEV) removes the temp file', async () => {
    const other = mkdtempSync('/dev/shm/mtap-md-');
    try {
      // Precondition: /dev/shm is its own tmpfs, so rename(2) across it fails.
      expect(statSync(other).dev).not.toBe(statSync(root).dev);
      const d = fresh();
      mkdirSync(d);
      symlinkSync(other, join(d, 'new'));
      await expect(deliverToMaildir(d, ['x'], { maxBytes: 10 })).rejects.toMatchObject({ code: 'MAILDIR_WRITE_FAILED', message: /EXDEV/, reply: { code: 451 } });
      expect(ls(d, 'tmp')).toEqual([]);
      expect(readdirSync(other)).toEqual([]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('a read-only Maildir fails with 451 and leaves nothing (non-root only: root ignores modes)', async () => {
    const d = fresh();
    mkdirSync(join(d, 'tmp'), { recursive: true });
    mkdirSync(join(d, 'new'));
    mkdirSync(join(d, 'cur'));
    chmodSync(join(d, 'tmp'), 0o500);
    const r = deliverToMaildir(d, ['x'], { maxBytes: 10 });
    if (process.getuid?.() === 0) await expect(r).resolves.toMatchObject({ bytes: 1 });
    else await expect(r).rejects.toMatchObject({ code: 'MAILDIR_UNAVAILABLE', message: /EACCES/, reply: { code: 451 } });
  });

  it('refuses a return path that would inject a header line', async () => {
    const d = fresh();
    await expect(deliverToMaildir(d, ['x'], { maxBytes: 10, returnPath: 'a@b\r\nX-Evil: 1' })).rejects.toMatchObject({ code: 'MAILDIR_BAD_ENVELOPE' });
  });
});
