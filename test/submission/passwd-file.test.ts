import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePasswdFile, readPasswdFile, PasswdFileError } from '../../adapters/submission/passwd-file.js';
import { verifyPassword } from '../../adapters/submission/passwords.js';
import { dovecotHash, makeRunDir } from '../peers/harness.js';

const dir = await makeRunDir('passwd');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const argon = await dovecotHash('nancy-pw', 'ARGON2ID');
const sha = await dovecotHash('bob-pw', 'SHA512-CRYPT');
const blf = await dovecotHash('carol-pw', 'BLF-CRYPT');

describe('parsePasswdFile', () => {
  it('reads full and short forms, skips comments and blank lines, and verifies', async () => {
    const text = [
      '# users for the submission listener',
      '',
      `nancy@northwind.test:${argon}:1000:1000::/home/nancy::`,
      `   # indented comment`,
      `bob:${sha}`,
      `carol@northwind.test:${blf}::::::userdb_quota_rule=*:storage=1G`,
      '',
    ].join('\r\n');
    const f = parsePasswdFile(text);
    expect(f.issues).toEqual([]);
    expect([...f.entries.keys()]).toEqual(['nancy@northwind.test', 'bob', 'carol@northwind.test']);
    expect(f.entries.get('nancy@northwind.test')).toMatchObject({ line: 3, hash: { scheme: 'ARGON2ID' } });
    expect(f.entries.get('bob')?.line).toBe(5);
    expect(f.entries.get('carol@northwind.test')?.extraFields).toEqual({});
    const n = f.entries.get('nancy@northwind.test');
    expect(n !== undefined && (await verifyPassword(n.hash, 'nancy-pw'))).toBe(true);
    const b = f.entries.get('bob');
    expect(b !== undefined && (await verifyPassword(b.hash, 'nancy-pw'))).toBe(false);
  });

  it('reports bad lines with their line numbers and keeps the good ones', () => {
    const text = [
      `ok:${sha}`,
      'plain:{PLAIN}secret',
      'nopass:',
      'nopass2',
      ':{SHA512-CRYPT}x',
      `bad user:${sha}`,
      `ok:${blf}`,
      `junk:{SHA512-CRYPT}$6$abc$short`,
      `netted:${sha}::::::allow_nets=192.0.2.0/24`,
    ].join('\n');
    const f = parsePasswdFile(text);
    expect([...f.entries.keys()]).toEqual(['ok', 'netted']);
    expect(f.entries.get('ok')?.hash.scheme).toBe('SHA512-CRYPT');
    expect(f.issues.map((i) => [i.line, i.severity, i.code])).toEqual([
      [2, 'error', 'PASSWD_BAD_HASH'],
      [3, 'error', 'PASSWD_NO_PASSWORD'],
      [4, 'error', 'PASSWD_NO_PASSWORD'],
      [5, 'error', 'PASSWD_BAD_USER'],
      [6, 'error', 'PASSWD_BAD_USER'],
      [7, 'warning', 'PASSWD_DUPLICATE_USER'],
      [8, 'error', 'PASSWD_BAD_HASH'],
      [9, 'warning', 'PASSWD_FIELD_IGNORED'],
    ]);
    expect(f.issues[0]?.message).toMatch(/plain: scheme \{PLAIN\} refused/);
    expect(f.issues.map((i) => i.message).join('\n')).not.toContain('secret');
  });

  it('marks nologin / noauthenticate users disabled, with the reason', () => {
    const f = parsePasswdFile(
      [`dave:${sha}::::::nologin=y reason=Account_disabled`, `erin:${sha}::::::noauthenticate`, `fay:${sha}::::::nologin=n`].join('\n'),
    );
    expect(f.entries.get('dave')?.disabled).toEqual({ reason: 'Account_disabled' });
    expect(f.entries.get('erin')?.disabled).toEqual({ reason: 'account disabled' });
    expect(f.entries.get('fay')?.disabled).toBeUndefined();
  });

  it('refuses over-long lines', () => {
    const f = parsePasswdFile(`a:${'x'.repeat(70_000)}\nok:${sha}`);
    expect(f.issues[0]?.code).toBe('PASSWD_LINE_TOO_LONG');
    expect(f.entries.has('ok')).toBe(true);
  });
});

describe('readPasswdFile', () => {
  it('reads a file, and a rewrite is seen by the next call', async () => {
    const p = join(dir, 'users');
    writeFileSync(p, `a:${sha}\n`);
    expect([...(await readPasswdFile(p)).entries.keys()]).toEqual(['a']);
    writeFileSync(p, `b:${sha}\n`);
    expect([...(await readPasswdFile(p)).entries.keys()]).toEqual(['b']);
  });

  it('refuses files over the size limit', async () => {
    const p = join(dir, 'big');
    writeFileSync(p, `a:${sha}\n`.repeat(100));
    await expect(readPasswdFile(p, { maxBytes: 1000 })).rejects.toMatchObject({ code: 'PASSWD_FILE_TOO_LARGE' });
    expect((await readPasswdFile(p, { maxBytes: 100_000 })).entries.size).toBe(1);
  });

  it('reports a missing or unreadable file', async () => {
    await expect(readPasswdFile(join(dir, 'missing'))).rejects.toBeInstanceOf(PasswdFileError);
    await expect(readPasswdFile(join(dir, 'missing'))).rejects.toMatchObject({ code: 'PASSWD_FILE_UNREADABLE', message: /ENOENT/ });
    mkdirSync(join(dir, 'adir'));
    await expect(readPasswdFile(join(dir, 'adir'))).rejects.toMatchObject({ code: 'PASSWD_FILE_UNREADABLE', message: /EISDIR/ });
  });
});
