/** CredentialStore over the configuration's hashes: outcomes, refusals before any lookup, the success cache. */
import { hashSync } from '@node-rs/bcrypt';
import { describe, expect, it } from 'vitest';
import { CredentialStore, type CredentialRequest } from '../../adapters/submission/credentials.js';
import { parseConfig } from '../../engine/config/load.js';

const config = parseConfig(`server: { fqdn: mail.test }
identities:
  users:
    - { name: nancy, addresses: [nancy@example.test], password: "{BLF-CRYPT}${hashSync('pw-1', 8)}" }
connectors:
  - { name: C, usage: client }
`, '/tmp/credentials-test.yaml');

const req = (username: string, password: string, extra: Partial<CredentialRequest> = {}): CredentialRequest => ({ mechanism: 'PLAIN', username, password, remoteIp: '127.0.0.1', secured: true, ...extra });

describe('CredentialStore', () => {
  it('success by name or address, wrong password, unknown user, and refusals that ask nobody', async () => {
    const s = await CredentialStore.open(config, { cacheTtlMs: 0 });
    expect(await s.check(req('nancy', 'pw-1'))).toMatchObject({ result: 'success', user: 'nancy', backend: 'config' });
    expect(await s.check(req('Nancy@Example.test', 'pw-1'))).toMatchObject({ result: 'success' });
    expect(await s.check(req('nancy', 'pw-2'))).toMatchObject({ result: 'failure', reason: 'wrong password' });
    expect(await s.check(req('nobody', 'pw-1'))).toMatchObject({ result: 'failure', reason: 'unknown user' });
    expect(await s.check(req('nancy', ''))).toMatchObject({ result: 'failure', backend: 'none' });
    expect(await s.check(req('nancy', 'pw-1', { authzid: 'bob' }))).toMatchObject({ result: 'failure', reason: 'authorization identity differs from the login' });
  });

  it("a remembered success never lets another password in (its speed shows in bench:submission)", async () => {
    const s = await CredentialStore.open(config, { cacheTtlMs: 60_000 });
    expect((await s.check(req('nancy', 'pw-1'))).result).toBe('success');
    expect((await s.check(req('nancy', 'pw-1'))).result).toBe('success');
    expect((await s.check(req('nancy', 'pw-1', { username: 'NANCY' }))).result).toBe('success');
    expect((await s.check(req('nancy', 'pw-1x'))).result).toBe('failure');
    expect((await s.check(req('nancy', 'pw-1'))).result).toBe('success');
  });
});
