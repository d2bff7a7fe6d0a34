/**
 * Review finding (fail-open, default mode): in cached mode (the default, `sessionCache` on) a
 * stage input carries neither `input.auth` (outside the AUTH stage) nor
 * `input.connection.remote.bits`, although policies/README.md documents both as input that
 * `package mta.ext` rules may read (`auth: {mechanism, login, result}`, `connection: {…,
 * remote: {family, bits}} # every stage`) and the top-level README's own extension example
 * tests `not input.auth` at RCPT. An extension deny keyed on them fires with
 * `sessionCache: false` and silently never fires in production: the extra refusal the admin
 * wrote is dropped (an extension "may only tighten", so losing it is failing open). The
 * equivalence test never builds an extension, so it cannot see this.
 *
 * Expected: cached and inline modes give the same decision for every documented input an
 * extension can read (carry `auth` and `bits` in the stage input, or document and enforce
 * that extensions must read `data.mta.*` instead, failing the build when they read them).
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

/** 198.51.100.0/24 as address bits. */
const NET_BITS = [198, 51, 100].map((n) => n.toString(2).padStart(8, '0')).join('');

const EXT = `package mta.ext

deny contains {"stage": "mail", "reason": "login_blocked", "reply": {"code": 550, "enhanced": "5.7.1", "text": "login blocked"}} if {
	input.auth.login == "alice"
}

deny contains {"stage": "rcpt", "reason": "network_blocked", "reply": {"code": 550, "enhanced": "5.7.1", "text": "network blocked"}} if {
	startswith(input.connection.remote.bits, "${NET_BITS}")
}

# The README's example, verbatim in shape: refuse ceo@ only for clients that did not authenticate.
deny contains {"stage": "rcpt", "reason": "blocked_recipient", "reply": {"code": 550, "enhanced": "5.7.1", "text": "Recipient blocked by local policy"}} if {
	input.rcpt.key == "ceo@contoso.test"
	not input.auth
}
`;

describe.skipIf(opa === null)('extension denies in cached mode', () => {
  let work: string;
  let cached: Engine;
  let inline: Engine;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mta-review-ext-'));
    await mkdir(join(work, 'rego'));
    await writeFile(join(work, 'rego', 'ext.rego'), EXT);
    const cap = captureIo();
    expect(await main(['build', '--policy', join(work, 'rego'), '--out', join(work, 'bundle')], cap.io), cap.err()).toBe(0);
    cached = await Engine.create({ config: fixtureConfig(), bundle: join(work, 'bundle') });
    inline = await Engine.create({ config: fixtureConfig(), bundle: join(work, 'bundle'), sessionCache: false });
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const alice = { local: '192.0.2.99:587', remote: '198.18.0.1', tls: {}, auth: { mechanism: 'PLAIN', user: 'alice' }, mail_from: '<alice@contoso.test>' };

  it('a deny on input.auth at MAIL fires in both modes', () => {
    expect(inline.decide('mail', alice).reason).toBe('login_blocked'); // the control
    expect(cached.decide('mail', alice).reason).toBe('login_blocked');
  });

  it('a deny on input.connection.remote.bits fires in both modes', () => {
    const facts = { local: '192.0.2.99:25', remote: '198.51.100.7', mail_from: '<>', rcpt_to: '<u@contoso.test>' };
    expect(inline.decide('rcpt', facts).reason).toBe('network_blocked');
    expect(cached.decide('rcpt', facts).reason).toBe('network_blocked');
  });

  it('through a Session too (the adapters\' path)', async () => {
    const s = cached.session({ local: '192.0.2.99:587', remote: '198.18.0.1', tls: {} });
    await s.connect();
    await s.helo('client.test');
    expect((await s.auth({ mechanism: 'PLAIN', user: 'alice' })).decision).toBe('continue');
    expect((await s.mail('<alice@contoso.test>')).reason).toBe('login_blocked');
    await s.close();
  });

  it("the README's `not input.auth` example does not refuse an authenticated client", () => {
    const facts = { ...alice, mail_from: '<bob@example.test>', rcpt_to: '<ceo@contoso.test>' };
    expect(inline.decide('rcpt', facts).decision).toBe('continue'); // the control
    expect(cached.decide('rcpt', facts).decision).toBe('continue');
  });
});
