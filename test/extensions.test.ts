/**
 * `package mta.ext` extensions on a real bundle built by `mta-policy build --policy`: an
 * extension reads the same input whether or not the session document is cached, a
 * configuration reload keeps the custom bundle, and a `discard` goes through a Session as a
 * discarded message (not an engine error at the next stage).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../engine/engine.js';
import { main } from '../cli/program.js';
import { parseScenarios } from '../cli/scenarios/parse.js';
import { checkScenario } from '../cli/scenarios/run.js';
import { captureIo, fixtureConfig } from './helpers/engine.js';
import { describeWithOpa, opa } from './helpers/opa.js';


/** 198.51.100.96/28 as leading address bits. */
const NET_BITS = [198, 51, 100, 96].map((n) => n.toString(2).padStart(8, '0')).join('').slice(0, 28);

const EXT = `package mta.ext

deny contains {"stage": "mail", "reason": "login_blocked", "reply": {"code": 550, "enhanced": "5.7.1", "text": "login blocked"}} if {
	input.auth.login == "alice"
}

deny contains {"stage": "rcpt", "reason": "network_blocked", "reply": {"code": 550, "enhanced": "5.7.1", "text": "network blocked"}} if {
	startswith(input.connection.remote.bits, "${NET_BITS}")
}

# The README's example: refuse ceo@ only for clients that did not authenticate.
deny contains {"stage": "rcpt", "reason": "blocked_recipient", "reply": {"code": 550, "enhanced": "5.7.1", "text": "Recipient blocked by local policy"}} if {
	input.rcpt.key == "ceo@contoso.test"
	not input.auth
}

deny contains {"stage": "mail", "reason": "spamtrap", "decision": "discard", "reply": {"code": 250, "enhanced": "2.1.0", "text": "Ok"}} if {
	input.mail.address.domain == "spam.test"
}

deny contains {"stage": "rcpt", "reason": "trap_recipient", "decision": "discard", "reply": {"code": 250, "enhanced": "2.1.5", "text": "Ok"}} if {
	input.rcpt.key == "trap@contoso.test"
}

deny contains {"stage": "headers", "reason": "trap_subject", "decision": "discard", "reply": {"code": 250, "enhanced": "2.6.0", "text": "Ok"}} if {
	"x-trap" in input.message.header_names
}
`;

let work: string;
let bundle: string;
let cached: Engine;
let inline: Engine;
beforeAll(async () => {
  if (opa === null) return;
  work = await mkdtemp(join(tmpdir(), 'mta-ext-'));
  bundle = join(work, 'bundle');
  await mkdir(join(work, 'rego'));
  await writeFile(join(work, 'rego', 'ext.rego'), EXT);
  const cap = captureIo();
  expect(await main(['build', '--policy', join(work, 'rego'), '--out', bundle], cap.io), cap.err()).toBe(0);
  cached = await Engine.create({ config: fixtureConfig(), bundle });
  inline = await Engine.create({ config: fixtureConfig(), bundle, sessionCache: false });
});
afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describeWithOpa('extension denies read the same input in cached and inline mode', () => {
  const alice = { local: '192.0.2.99:587', remote: '198.18.0.1', tls: {}, auth: { mechanism: 'PLAIN', user: 'alice' }, mail_from: '<alice@contoso.test>' };

  it('a deny on input.auth at MAIL fires in both modes', () => {
    expect(inline.decide('mail', alice).reason).toBe('login_blocked');
    expect(cached.decide('mail', alice).reason).toBe('login_blocked');
  });

  it('a deny on input.connection.remote.bits fires in both modes', () => {
    const facts = { local: '192.0.2.99:25', remote: '198.51.100.100', mail_from: '<>', rcpt_to: '<u@contoso.test>' };
    expect(inline.decide('rcpt', facts).reason).toBe('network_blocked');
    expect(cached.decide('rcpt', facts).reason).toBe('network_blocked');
    expect(cached.decide('rcpt', { ...facts, remote: '198.51.100.7' }).decision).toBe('continue');
  });

  it('through a Session too (the adapters\' path)', async () => {
    const s = cached.session({ local: '192.0.2.99:587', remote: '198.18.0.1', tls: {} });
    await s.connect();
    await s.helo('client.test');
    expect((await s.auth({ mechanism: 'PLAIN', user: 'alice' })).decision).toBe('continue');
    expect((await s.mail('<alice@contoso.test>')).reason).toBe('login_blocked');
    await s.close();
  });

  it("the README's `not input.auth` example refuses only an anonymous client", () => {
    const facts = { ...alice, mail_from: '<bob@example.test>', rcpt_to: '<ceo@contoso.test>' };
    expect(inline.decide('rcpt', facts).decision).toBe('continue');
    expect(cached.decide('rcpt', facts).decision).toBe('continue');
    const anonymous = { local: '192.0.2.99:25', remote: '198.51.100.7', mail_from: '<bob@example.test>', rcpt_to: '<ceo@contoso.test>' };
    expect(inline.decide('rcpt', anonymous).reason).toBe('blocked_recipient');
    expect(cached.decide('rcpt', anonymous).reason).toBe('blocked_recipient');
  });
});

describeWithOpa('Engine.reload', () => {
  it('keeps the custom bundle when only the configuration is reloaded', async () => {
    const engine = await Engine.create({ config: fixtureConfig(), bundle });
    const facts = { local: '192.0.2.99:25', remote: '198.51.100.7', mail_from: '<>', rcpt_to: '<ceo@contoso.test>' };
    expect(engine.decide('rcpt', facts).reason).toBe('blocked_recipient');
    await engine.reload(fixtureConfig());
    expect(engine.decide('rcpt', facts).reason).toBe('blocked_recipient');
    expect(engine.manifest.extra_sources).toHaveLength(1);
    // An explicit bundle replaces it: the shipped one has no extension.
    await engine.reload(fixtureConfig(), join(work, '..', 'does-not-exist')).catch(() => undefined);
    expect(engine.decide('rcpt', facts).reason).toBe('blocked_recipient'); // a failed reload keeps the running bundle
  });
});

describeWithOpa('discard through a Session', () => {
  async function open(): Promise<ReturnType<Engine['session']>> {
    const s = cached.session({ local: '192.0.2.99:25', remote: '198.51.100.7' });
    expect((await s.connect()).decision).toBe('continue');
    expect((await s.helo('client.example.test')).decision).toBe('continue');
    return s;
  }
  const brief = (d: { decision: string; reason: string; error?: { code: string } }): string => `${d.decision} ${d.reason}${d.error === undefined ? '' : ` ${d.error.code}`}`;

  it('after a MAIL discard, the rest of the message is discarded, not an engine error', async () => {
    const s = await open();
    expect(brief(await s.mail('<a@spam.test>'))).toBe('discard spamtrap');
    expect(s.inTransaction).toBe(true);
    const rcpt = await s.rcpt('<u@contoso.test>');
    expect(brief(rcpt)).toBe('discard spamtrap');
    expect(rcpt.reply.code).toBe(250);
    // A recipient the policy refuses is still refused: discarding does not open a relay.
    expect(brief(await s.rcpt('<x@victim.test>'))).toBe('reject relay_denied');
    expect(brief(await s.headers([['From', 'a@spam.test']]))).toBe('discard spamtrap');
    expect(brief(await s.eom(200))).toBe('discard spamtrap');
    expect(s.inTransaction).toBe(false);
    await s.messageAccepted(); // nothing was accepted: no message counted
    expect(s.messages).toBe(0);
    // The next transaction starts clean.
    expect(brief(await s.mail('<a@example.test>'))).toBe('continue ok_mail');
    expect(brief(await s.rcpt('<u@contoso.test>'))).toBe('continue ok_rcpt');
    await s.close();
  });

  it('after the only RCPT is discarded, the message is discarded, not an engine error', async () => {
    const s = await open();
    expect(brief(await s.mail('<a@example.test>'))).toBe('continue ok_mail');
    expect(brief(await s.rcpt('<trap@contoso.test>'))).toBe('discard trap_recipient');
    expect(s.acceptedRecipients).toBe(1);
    expect(brief(await s.rcpt('<u@contoso.test>'))).toBe('discard trap_recipient');
    expect(brief(await s.headers([['From', 'a@example.test']]))).toBe('discard trap_recipient');
    expect(brief(await s.eom(200))).toBe('discard trap_recipient');
    await s.close();
  });

  it('mta-policy test runs a discarded message to its end', async () => {
    const [c] = parseScenarios(
      'cases:\n  - name: trap\n    session: { local: 192.0.2.99:25, remote: 198.51.100.7, helo: mx.example.test, mail_from: <a@spam.test>, rcpt_to: [<u@contoso.test>], headers: { From: a@spam.test } }\n' +
        '    expect: { mail: { decision: discard }, rcpt: { <u@contoso.test>: { decision: discard } }, eom: { decision: discard, reason: spamtrap } }\n',
      'trap.yaml',
    );
    expect(await checkScenario(cached, c as NonNullable<typeof c>)).toEqual([]);
  });

  it('a discard at end of headers still answers end of message', async () => {
    const s = await open();
    await s.mail('<a@example.test>');
    await s.rcpt('<u@contoso.test>');
    expect(brief(await s.headers([['From', 'a@example.test'], ['X-Trap', '1']]))).toBe('discard trap_subject');
    expect(brief(await s.eom(200))).toBe('discard trap_subject');
    await s.close();
  });
});
