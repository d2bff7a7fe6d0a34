/**
 * Review finding (fail-open on reload): `Engine.reload(config, bundle?)` documents the bundle
 * as optional ("Swap in a new configuration (and optionally bundle)"), but without it the
 * engine reads the *shipped* bundle (`readBundle(undefined)` → policies/dist), not the one it
 * was created with. An adapter that reloads the configuration on SIGHUP with
 * `engine.reload(newConfig)` silently drops every `package mta.ext` deny of a custom bundle
 * built with `mta-policy build --policy`.
 *
 * Expected: reload without a bundle keeps the running snapshot's bundle.
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

deny contains {"stage": "rcpt", "reason": "blocked_recipient", "reply": {"code": 550, "enhanced": "5.7.1", "text": "Recipient blocked by local policy"}} if {
	input.rcpt.key == "ceo@contoso.test"
}
`;

describe.skipIf(opa === null)('Engine.reload', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mta-review-reload-'));
    await mkdir(join(work, 'rego'));
    await writeFile(join(work, 'rego', 'ext.rego'), EXT);
    const cap = captureIo();
    expect(await main(['build', '--policy', join(work, 'rego'), '--out', join(work, 'bundle')], cap.io), cap.err()).toBe(0);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('keeps the custom bundle when only the configuration is reloaded', async () => {
    const engine = await Engine.create({ config: fixtureConfig(), bundle: join(work, 'bundle') });
    const facts = { local: '192.0.2.99:25', remote: '198.51.100.7', mail_from: '<>', rcpt_to: '<ceo@contoso.test>' };
    expect(engine.decide('rcpt', facts).reason).toBe('blocked_recipient');
    await engine.reload(fixtureConfig());
    expect(engine.decide('rcpt', facts).reason).toBe('blocked_recipient');
  });
});
