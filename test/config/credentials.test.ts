import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, formatIssue } from '../../engine/errors.js';
import type { ConfigIssue } from '../../engine/errors.js';
import { parseConfig } from '../../engine/config/load.js';
import type { Config } from '../../engine/config/types.js';
import { lineOf } from './helpers.js';

// A self-signed P-256 certificate for a.northwind.test (valid until 2126), its key, and the
// key of another certificate: test material only.
const A_PEM = `-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUPQr+91wRbm8GJy4XiPyPjtXTHzMwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQYS5ub3J0aHdpbmQudGVzdDAgFw0yNjEyMDEwODIwMzhaGA8y
MTI2MTEwNzA4MjAzOFowGzEZMBcGA1UEAwwQYS5ub3J0aHdpbmQudGVzdDBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABK1ow2hp/jwXlZzzE5uyy/eVywyfH3xMx6tz
MD4laUhbSyKZHuPs7nZPPkfTyTZ/PdZqw0h35jsm3BvERfzNOKSjUzBRMB0GA1Ud
DgQWBBR5KxcVLxMTmTzkDvL6jRVHu2zYvTAfBgNVHSMEGDAWgBR5KxcVLxMTmTzk
DvL6jRVHu2zYvTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCICvO
/ymq15OkZZfBAyOLFCpI/+LXRuOvuhYyxeQplYQPAiEAnM05QUUOvVQZROKS8xJj
EmzTxxaOiBCcx+frQJislUA=
-----END CERTIFICATE-----
`;
const A_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4oE64QIdJRwjPq7q
2TX0/O5Ez6tCzDzzvZU4jTerLQWhRANCAAStaMNoaf48F5Wc8xObssv3lcsMnx98
TMerczA+JWlIW0simR7j7O52Tz5H08k2fz3WasNId+Y7JtwbxEX8zTik
-----END PRIVATE KEY-----
`;
const B_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGdlQjJ9DIgatoLYz
Fi7rkEXkHK9TAbrnrwy6/qJJDayhRANCAARs95Y5s54LxUyZR0BR+ZdrxyabiPpk
FfrGiD9uL4dhdSxJIkgSZdt+sRFS/OBded9NOmzYN+nwuxV5Qgomh8L/
-----END PRIVATE KEY-----
`;

const dir = mkdtempSync(join(tmpdir(), 'mta-policy-credentials-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, 'certs'));
writeFileSync(join(dir, 'certs', 'a.pem'), A_PEM);
writeFileSync(join(dir, 'certs', 'a.key'), A_KEY);
writeFileSync(join(dir, 'certs', 'b.key'), B_KEY);
writeFileSync(join(dir, 'users.passwd'), 'nancy:{SHA512-CRYPT}$6$salt$hash\n');
execFileSync('mkfifo', [join(dir, 'fifo')]);
const FILE = join(dir, 'config.yaml');

const load = (text: string): Config => parseConfig(text, FILE);
function issues(text: string): readonly ConfigIssue[] {
  try {
    load(text);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
const at = (text: string, path: string): ConfigIssue => {
  const found = issues(text).filter((i) => i.path === path);
  if (found.length !== 1 || found[0] === undefined) throw new Error(`expected one issue at ${path}: ${issues(text).map(formatIssue).join('\n')}`);
  return found[0];
};
const withServer = (server: string, rest = 'connectors:\n  - { name: C, usage: client }\n'): string => `server:\n  fqdn: mx.test\n${server}${rest}`;

describe('tls: certificate and key files', () => {
  it('relative to the configuration file, checked, and every connector\'s default', () => {
    const text = withServer(
      '  tls: { cert: certs/a.pem, key: certs/a.key }\n',
      'connectors:\n  - { name: C, usage: client }\n  - { name: D, usage: client, bindings: ["0.0.0.0:2587"], tls: { cert: ./certs/a.pem, key: "' + join(dir, 'certs', 'a.key') + '" } }\n',
    );
    const config = load(text);
    expect(config.server.tls).toEqual({ cert: join(dir, 'certs', 'a.pem'), key: join(dir, 'certs', 'a.key'), source: { file: FILE, line: 3, path: 'server.tls' } });
    expect(config.connectors.map((c) => c.tls?.cert)).toEqual([join(dir, 'certs', 'a.pem'), join(dir, 'certs', 'a.pem')]);
    expect(config.connectors[1]?.tls?.source.path).toBe('connectors[1].tls');
    expect(load(withServer('')).connectors[0]?.tls).toBeNull();
  });

  it('a missing file, a key that does not match, a file that is not PEM, a directory, a FIFO', () => {
    const missing = withServer('  tls:\n    cert: certs/missing.pem\n    key: certs/a.key\n');
    const m = at(missing, 'server.tls.cert');
    expect(m.line).toBe(lineOf(missing, 'missing.pem'));
    expect(m.message).toBe('cannot read the certificate file `certs/missing.pem`: the file does not exist');
    const mismatch = withServer('  tls:\n    cert: certs/a.pem\n    key: certs/b.key\n');
    const k = at(mismatch, 'server.tls.key');
    expect(k.line).toBe(lineOf(mismatch, 'b.key'));
    expect(k.message).toBe('the key `certs/b.key` does not belong to the certificate `certs/a.pem`');
    expect(at(withServer('  tls: { cert: certs/a.key, key: certs/a.key }\n'), 'server.tls.cert').message).toBe('`certs/a.key` does not hold a PEM certificate');
    expect(at(withServer('  tls: { cert: certs/a.pem, key: certs/a.pem }\n'), 'server.tls.key').message).toBe('`certs/a.pem` does not hold a PEM private key');
    expect(at(withServer('  tls: { cert: certs, key: certs/a.key }\n'), 'server.tls.cert').message).toContain('it is a directory');
    expect(at(withServer('  tls: { cert: fifo, key: certs/a.key }\n'), 'server.tls.cert').message).toContain('it is a FIFO');
    expect(at(withServer('  tls: { cert: certs/a.pem }\n'), 'server.tls').message).toContain('missing required key `key`');
    // The key's contents never appear in a message.
    for (const i of issues(withServer('  tls: { cert: certs/a.key, key: certs/a.key }\n'))) expect(formatIssue(i)).not.toContain('PRIVATE');
  });
});

describe('identities: passwd_file and passwords', () => {
  const ids = (body: string): string => `server: { fqdn: mx.test }\nidentities:\n${body}connectors: []\n`;

  it('passwd_file must be readable now', () => {
    expect(load(ids('  passwd_file: users.passwd\n')).passwdFile).toBe(join(dir, 'users.passwd'));
    const text = ids('  passwd_file: nobody.passwd\n');
    const i = at(text, 'identities.passwd_file');
    expect(i.line).toBe(3);
    expect(i.message).toBe('cannot read the passwd-file `nobody.passwd`: the file does not exist');
    expect(at(ids('  passwd_file: fifo\n'), 'identities.passwd_file').message).toContain('it is a FIFO, not a regular file');
  });

  it('a password is {SCHEME}hash with a supported scheme, and is never quoted', () => {
    const user = (password: string): string => ids(`  users:\n    - { name: nancy, password: ${password} }\n`);
    // Real hashes (doveadm pw): the loader parses them as the submission listener verifies them.
    const argon = '$argon2id$v=19$m=65536,t=3,p=1$+j4x/pDxahhDz8gje7x8OA$HcXjUCnFmCRcVFn62RjvGnv02kn2KLIv8uUw+C7T7hc';
    const bcrypt = '$2y$05$RyzEXglUFthW0an1u0yPTOsJbRy2f418XLWL8N9Rq3RnsYsM08ZA6';
    const sha = '$6$tLMrrtCeXGnDzkG.$zcW6ndUW69EZ82h.TJiRmJ5n1GdWbBCIPZVvTC4ovKKcG3Q26sLeRRjW9HhMkJN2w62wtICyHhDb/ytF/V4Vz1';
    expect(load(user(`"{ARGON2ID}${argon}"`)).users[0]?.password).toBe(`{ARGON2ID}${argon}`);
    expect(load(user(`"{bcrypt}${bcrypt}"`)).users[0]?.password).toBe(`{BCRYPT}${bcrypt}`);
    expect(load(user(`"{BLF-CRYPT}${bcrypt}"`)).users[0]?.password).toMatch(/^\{BLF-CRYPT\}/);
    expect(load(user(`"{SHA512-CRYPT}${sha}"`)).users[0]?.password).toMatch(/^\{SHA512-CRYPT\}/);
    expect(load(ids('  users: [{ name: nancy }]\n')).users[0]?.password).toBeUndefined();
    const cases: [string, string][] = [
      ['"{PLAIN}hunter2"', 'password scheme `{PLAIN}` is not supported'],
      ['hunter2', 'a password must be a string {SCHEME}hash (the value is not shown)'],
      ['"{ARGON2ID}"', 'a password must be a string {SCHEME}hash (the value is not shown)'],
      ['123456789', 'a password must be a string {SCHEME}hash (the value is not shown)'],
      ['"{SHA512-CRYPT}$6$salt$hunter2"', 'the password hash is not usable: {SHA512-CRYPT} expects $6$[rounds=N$]<salt of 1-16>$<86 characters> (the value is not shown)'],
      ['"{BLF-CRYPT}$2y$31$hunter2hunter2hunter2hunter2hunter2hunter2hunter2hunt"', 'the password hash is not usable: {BLF-CRYPT} cost 31 exceeds the limit of 14: every login attempt would cost 2^31 rounds (the value is not shown)'],
    ];
    for (const [value, message] of cases) {
      const i = at(user(value), 'identities.users[0].password');
      expect(i.message).toBe(message);
      expect(formatIssue(i)).not.toMatch(/hunter2|123456789/);
    }
  });
});
