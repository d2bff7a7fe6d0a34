/**
 * Review findings on facts → input (engine/input.ts) and the sender check.
 */
import { describe, expect, it } from 'vitest';
import { INPUT_LIMITS } from '../../engine/input.js';
import { fixtureEngine } from '../helpers/engine.js';

describe('input bounds', () => {
  /*
   * README "Facts": "Facts are bounded (2,000 header fields of at most 64 KiB each, 1 MiB of
   * header, 100 From mailboxes); facts that are malformed or too large are refused with a
   * tempfail". messageSummary enforces the 1 MiB header-block bound only when header_size is
   * absent; an adapter that passes header_size (as Session.headers(h, size) invites) gets 2.4 MB
   * of header fields accepted — `continue` on a connector that bypasses size limits.
   * Expected: the header-block bound applies whether or not header_size is given (or the README
   * and INPUT_LIMITS say it is only a default for a missing header_size).
   */
  it('refuses a header block over INPUT_LIMITS.headerBytes even when header_size is given', async () => {
    const engine = await fixtureEngine();
    const headers: [string, string][] = [['From', 'x@example.test']];
    for (let i = 0; i < 40; i++) headers.push([`X-Big-${i}`, 'v'.repeat(60_000)]);
    const facts = { local: '192.0.2.99:25', remote: '10.1.2.3', mail_from: '<x@example.test>', headers };
    expect(engine.decide('headers', facts).error?.code).toBe('ENGINE_INPUT_INVALID'); // control: no header_size
    const withSize = engine.decide('headers', { ...facts, header_size: 2_500_000 });
    expect(2_500_000).toBeGreaterThan(INPUT_LIMITS.headerBytes);
    expect(withSize.error?.code, `got ${withSize.decision} ${withSize.reason}`).toBe('ENGINE_INPUT_INVALID');
  });
});

describe('sender check and domain literals', () => {
  /*
   * RCPT treats a literal naming this server (`ceo@[192.0.2.10]`, server.local_addresses) as
   * local mail (accepted_domain_type local_literal), but the sender check's "inside" test
   * (domains.rego internal_sender) looks only at accepted domains, so the same mailbox as a
   * sender counts as an *outside* sender. On a connector that denies anonymous
   * Accept-Authoritative-Domain-Sender (the fixture's Strict Internet, the usual anti-spoofing
   * hardening), `From: ceo@contoso.test` is refused but `From: ceo@[192.0.2.10]` — a local
   * mailbox by the policy's own RCPT rule — passes.
   * Expected: a sender whose domain is a local literal is inside (needs
   * Accept-Authoritative-Domain-Sender), consistently with RCPT.
   */
  it('treats a local-literal sender as inside, as RCPT treats it as local', async () => {
    const engine = await fixtureEngine();
    const base = { local: '192.0.2.99:2525', remote: '198.51.100.7', mail_from: '<x@example.test>' };
    expect(engine.decide('rcpt', { ...base, rcpt_to: '<ceo@[192.0.2.10]>' }).recipient.accepted_domain_type).toBe('local_literal');
    expect(engine.decide('headers', { ...base, headers: { From: 'ceo@contoso.test' } }).reason).toBe('send_as_denied_anonymous'); // control
    expect(engine.decide('headers', { ...base, headers: { From: 'ceo@[192.0.2.10]' } }).reason).toBe('send_as_denied_anonymous');
  });
});
