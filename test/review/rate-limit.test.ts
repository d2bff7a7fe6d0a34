/**
 * Review finding: the per-user message rate limit (message_rate_source: user, the client
 * connector's default) is keyed by the login string as typed, not by the account. Exchange's
 * MessageRateSource User counts per user; here every extra login name of one identity (its
 * `logins`, and every address, which the README says is also a login name) is a separate
 * bucket, so a user multiplies the limit by the number of names she can log in with.
 *
 * Expected: the rate key of an authenticated session is the identity (session document's
 * `identity`), so every login name of nancy shares one bucket.
 */
import { describe, expect, it } from 'vitest';
import { engineFor, opened, sendOne } from './helpers.js';

describe('message rate limit per user', () => {
  it('holds one user to the limit whichever login name she uses', async () => {
    const engine = await engineFor(); // Client: message_rate_limit 1 per minute, source user
    const first = await opened(engine);
    expect((await first.auth({ mechanism: 'PLAIN', user: 'nancy' })).decision).toBe('continue');
    expect(await sendOne(first, '<nancy@northwind.test>', '<x@example.test>')).toBe('eom:accept:ok_eom');
    await first.close();

    // Same login again: correctly limited (the control).
    const again = await opened(engine);
    expect((await again.auth({ mechanism: 'PLAIN', user: 'NANCY' })).decision).toBe('continue');
    expect((await again.mail('<nancy@northwind.test>')).reason).toBe('rate_limit');
    await again.close();

    // The same account through her other login names: must be limited too.
    for (const login of ['NORTHWIND\\nancy', 'nancy@northwind.test']) {
      const s = await opened(engine);
      const a = await s.auth({ mechanism: 'PLAIN', user: login });
      expect(a.principals, login).toContain('user:nancy');
      expect((await s.mail('<nancy@northwind.test>')).reason, `login ${login}`).toBe('rate_limit');
      await s.close();
    }
  });
});
