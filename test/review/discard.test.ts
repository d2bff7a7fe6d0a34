/**
 * Review finding: the Session has no notion of a `discard` decision. adapters/README's table
 * says `discard` happens at "mail … eom" and the submission listener answers it with "accept
 * (250), then drop the message (not relayed)" — so the client goes on with RCPT and DATA. But
 * Session.mail() opens the transaction only on `continue`, and rcpt() counts a recipient only on
 * `continue`, so after a MAIL (or the only RCPT) discard every following call is an
 * ENGINE_SESSION_SEQUENCE tempfail (451): the client that was told 250 gets 451 for the rest of
 * the message, and every adapter has to re-implement discard around the session — what the
 * session model exists to prevent (issue 5 §1).
 *
 * Expected: a discard keeps the transaction open in a discarding state; RCPT, end of headers
 * and end of message then answer `discard` (never an engine error), and the transaction ends
 * at end of message as usual.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOpa } from '../../engine/build.js';
import { Engine } from '../../engine/engine.js';
import { main } from '../../cli/program.js';
import { captureIo, fixtureConfig } from '../helpers/engine.js';

const opa = findOpa();

const EXT = `package mta.ext

deny contains {"stage": "mail", "reason": "spamtrap", "decision": "discard", "reply": {"code": 250, "enhanced": "2.1.0", "text": "Ok"}} if {
	input.mail.address.domain == "spam.test"
}

deny contains {"stage": "rcpt", "reason": "trap_recipient", "decision": "discard", "reply": {"code": 250, "enhanced": "2.1.5", "text": "Ok"}} if {
	input.rcpt.key == "trap@contoso.test"
}
`;

describe.skipIf(opa === null)('discard through a Session', () => {
  let work: string;
  let engine: Engine;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mta-review-discard-'));
    await mkdir(join(work, 'rego'));
    await writeFile(join(work, 'rego', 'ext.rego'), EXT);
    const cap = captureIo();
    expect(await main(['build', '--policy', join(work, 'rego'), '--out', join(work, 'bundle')], cap.io), cap.err()).toBe(0);
    engine = await Engine.create({ config: fixtureConfig(), bundle: join(work, 'bundle') });
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function open(): Promise<ReturnType<Engine['session']>> {
    const s = engine.session({ local: '192.0.2.99:25', remote: '198.51.100.7' });
    expect((await s.connect()).decision).toBe('continue');
    expect((await s.helo('client.example.test')).decision).toBe('continue');
    return s;
  }

  it('after a MAIL discard, the rest of the message is discarded, not an engine error', async () => {
    const s = await open();
    expect((await s.mail('<a@spam.test>')).decision).toBe('discard');
    const steps = [await s.rcpt('<u@contoso.test>'), await s.headers([['From', 'a@spam.test']]), await s.eom(200)];
    expect(steps.map((d) => d.error?.code ?? null)).toEqual([null, null, null]);
    expect(steps.map((d) => d.decision)).not.toContain('tempfail');
    await s.close();
  });

  it('after the only RCPT is discarded, the message is discarded, not an engine error', async () => {
    const s = await open();
    expect((await s.mail('<a@example.test>')).decision).toBe('continue');
    expect((await s.rcpt('<trap@contoso.test>')).decision).toBe('discard');
    const h = await s.headers([['From', 'a@example.test']]);
    expect(h.error?.code ?? null, `end of headers: ${h.decision} ${h.reason}`).toBeNull();
    await s.close();
  });
});
