/**
 * Tests that need the pinned `opa` binary: the golden agreement between OPA's Go evaluator
 * and the compiled WASM, and bundle builds with extra Rego. scripts/test.sh installs opa and
 * sets MTA_POLICY_REQUIRE_OPA=1, so in CI these never skip.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRYPOINTS, readBundle, shippedPolicyDir } from '../engine/bundle.js';
import { compileData } from '../engine/data.js';
import { Engine, stageSessionJson } from '../engine/engine.js';
import { buildInput, SessionInput, stageInputJson, type PolicyInput } from '../engine/input.js';
import { parseSessionDoc } from '../engine/decision.js';
import type { Facts, Stage } from '../engine/types.js';
import { loadWasmPolicy } from '../engine/wasm.js';
import { main } from '../cli/program.js';
import { captureIo, fixtureConfig, fixturePath } from './helpers/engine.js';
import { goldenCases } from './helpers/golden.js';
import { describeWithOpa, opa } from './helpers/opa.js';

const run = promisify(execFile);
// --- golden agreement: OPA's Go evaluator vs the WASM engine ------------------------------------

describeWithOpa('golden agreement: opa eval (Go) and policy.wasm give identical decisions', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mta-golden-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('on every case of the table', async () => {
    const data = compileData(fixtureConfig());
    const wasm = loadWasmPolicy((await readBundle()).wasm);
    wasm.setData(data);
    // Three shapes per golden case: the inline stage input, the session entrypoint's
    // restricted input, and the cached-mode stage input carrying the session document.
    const cases: { stage: string; input: object }[] = [];
    for (const c of goldenCases()) {
      cases.push({ stage: c.stage, input: buildInput(c.stage, c.facts, { explain: true }) as PolicyInput });
      const si = SessionInput.fromFacts(c.facts);
      cases.push({ stage: 'session', input: JSON.parse(si.json) as object });
      const doc = parseSessionDoc(wasm.evaluate('mta/session', si.json));
      cases.push({ stage: c.stage, input: JSON.parse(stageInputJson(c.stage, c.facts, si, { explain: true, sessionDoc: stageSessionJson(doc, true) }).json) as object });
    }
    expect(cases.length).toBeGreaterThan(2100);

    const fromWasm = cases.map((c) => (wasm.evaluate(`mta/${c.stage}`, c.input) as { result: unknown }[])[0]?.result ?? null);

    await writeFile(join(work, 'data.json'), JSON.stringify(data));
    await writeFile(join(work, 'input.json'), JSON.stringify({ cases }));
    await writeFile(
      join(work, 'golden.rego'),
      'package golden\n\nresults[i] := r if {\n\tsome i, c in input.cases\n\tr := data.mta[c.stage] with input as c.input\n}\n',
    );
    const { stdout } = await run(
      opa as string,
      ['eval', '-f', 'json', '-d', join(shippedPolicyDir(), 'mta'), '-d', join(work, 'golden.rego'), '-d', join(work, 'data.json'), '-i', join(work, 'input.json'), 'data.golden.results'],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    const parsed = JSON.parse(stdout) as { result: { expressions: { value: Record<string, unknown> }[] }[] };
    const fromGo = parsed.result[0]?.expressions[0]?.value ?? {};

    const disagreements = cases
      .map((c, i) => ({ i, stage: c.stage, go: fromGo[String(i)] ?? null, wasm: fromWasm[i] }))
      .filter((x) => JSON.stringify(sortKeys(x.go)) !== JSON.stringify(sortKeys(x.wasm)));
    expect(disagreements.slice(0, 3)).toEqual([]);
    // Every case produced a decision in both, and the table covers every stage and outcome kind.
    expect(fromWasm.every((r) => r !== null)).toBe(true);
    const reasons = new Set(fromWasm.map((r) => (r as { reason?: string }).reason));
    for (const r of ['relay_denied', 'routing_address', 'submit_denied_anonymous', 'auth_requires_tls', 'send_as_denied', 'message_size', 'no_connector', 'ok_eom']) {
      expect(reasons).toContain(r);
    }
  });
});

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

// --- building bundles with extra Rego (mta-policy build --policy DIR) ---------------------------

describeWithOpa('mta-policy build', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mta-build-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function extension(name: string, rego: string): Promise<{ dir: string; out: string }> {
    const dir = join(work, name, 'rego');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'ext.rego'), rego);
    return { dir, out: join(work, name, 'bundle') };
  }

  async function build(dir: string, out: string): Promise<{ code: number; out: string; err: string }> {
    const cap = captureIo();
    const code = await main(['build', '--policy', dir, '--out', out], cap.io);
    return { code, out: cap.out(), err: cap.err() };
  }

  it('compiles extension rules that tighten the shipped policy', async () => {
    const { dir, out } = await extension(
      'ok',
      `package mta.ext

deny contains {"stage": "rcpt", "reason": "blocked_recipient", "reply": {"code": 550, "enhanced": "5.7.1", "text": "Recipient blocked by local policy"}} if {
	input.rcpt.key == "ceo@contoso.test"
}
`,
    );
    const r = await build(dir, out);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain('policy.wasm with opa v');
    const engine = await Engine.create({ config: fixtureConfig(), bundle: out });
    const facts = { local: '192.0.2.99:25', remote: '198.51.100.7', mail_from: '<>' };
    expect(engine.decide('rcpt', { ...facts, rcpt_to: '<ceo@contoso.test>' })).toMatchObject({
      decision: 'reject',
      reason: 'blocked_recipient',
      reply: { code: 550, enhanced: '5.7.1', text: 'Recipient blocked by local policy' },
    });
    expect(engine.decide('rcpt', { ...facts, rcpt_to: '<user@contoso.test>' }).decision).toBe('continue');
    // The manifest records the extra sources; changing them makes the bundle stale.
    await writeFile(join(dir, 'ext.rego'), (await readFile(join(dir, 'ext.rego'), 'utf8')) + '\n# edited\n');
    await expect(readBundle(out)).rejects.toMatchObject({ code: 'ENGINE_BUNDLE_STALE' });
  });

  it('reports Rego compile errors with file and line, on one line', async () => {
    const { dir, out } = await extension('broken', 'package mta.ext\n\ndeny contains x if {\n\tx := \n}\n');
    const r = await build(dir, out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mta-policy: opa build failed: .*ext\.rego:\d+: rego_parse_error/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('refuses builtins that are not native to the wasm target', async () => {
    const { dir, out } = await extension('sprintf', 'package mta.ext\n\nmsg := sprintf("%s", ["x"])\n');
    const r = await build(dir, out);
    expect(r.code).toBe(1);
    expect(r.err).toContain('undefined function sprintf');
  });

  it('refuses extension Rego outside package mta.ext, which could loosen the policy', async () => {
    const { dir, out } = await extension('loosen', '# grant relay to everyone\npackage mta\n\nallowed_rights contains "ms-Exch-SMTP-Accept-Any-Recipient"\n');
    const r = await build(dir, out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mta-policy: .*ext\.rego:2: package mta: extension Rego must be in package mta\.ext/);
  });

  it('says clearly when opa is missing', async () => {
    const saved = process.env['MTA_POLICY_OPA'];
    process.env['MTA_POLICY_OPA'] = '/nonexistent/opa';
    try {
      const cap = captureIo();
      expect(await main(['build', '--out', join(work, 'none')], cap.io)).toBe(1);
      expect(cap.err()).toMatch(/^mta-policy: opa not found/);
    } finally {
      if (saved === undefined) delete process.env['MTA_POLICY_OPA'];
      else process.env['MTA_POLICY_OPA'] = saved;
    }
  });

  it.each([
    [
      'a policy that aborts (conflicting rule values)',
      'package mta.ext\n\nboom := 1 if input.stage == "rcpt"\n\nboom := 2 if input.stage == "rcpt"\n\ndeny contains {"stage": "rcpt", "reason": "x"} if boom\n',
      'ENGINE_EVAL_FAILED',
    ],
    [
      'a policy that returns nothing (reason without a reply)',
      'package mta.ext\n\ndeny contains {"stage": "rcpt", "reason": "no_such_reason"} if input.stage == "rcpt"\n',
      'ENGINE_DECISION_UNDEFINED',
    ],
    [
      'a policy that returns a malformed reply',
      'package mta.ext\n\ndeny contains {"stage": "rcpt", "reason": "x", "reply": {"code": 550, "enhanced": "5.7.1", "text": "a\\r\\nb"}} if input.stage == "rcpt"\n',
      'ENGINE_DECISION_MALFORMED',
    ],
  ])('turns %s into a tempfail', async (_label, rego, code) => {
    const { dir, out } = await extension(code, rego);
    expect((await build(dir, out)).code).toBe(0);
    const engine = await Engine.create({ config: fixtureConfig(), bundle: out });
    const d = engine.decide('rcpt', { local: '192.0.2.99:25', remote: '198.51.100.7', mail_from: '<>', rcpt_to: '<user@contoso.test>' });
    expect(d).toMatchObject({ decision: 'tempfail', reply: { code: 451, enhanced: '4.3.0' }, error: { code } });
    // Other stages still work.
    expect(engine.decide('connect', { local: '192.0.2.99:25', remote: '198.51.100.7' }).decision).toBe('continue');
  });

  it('refuses a policy.wasm that needs builtins the runtime lacks', async () => {
    const { dir } = await extension('time', 'package mta.ext\n\ndeny contains {"stage": "rcpt", "reason": "x"} if time.now_ns() < 0\n');
    const file = join(work, 'time', 'bundle.tar.gz');
    const args = ['build', '-t', 'wasm', '-O=0', '-o', file, join(shippedPolicyDir(), 'mta'), dir];
    for (const e of ENTRYPOINTS) args.push('-e', e);
    await run(opa as string, args);
    await tar.x({ file, cwd: join(work, 'time'), filter: (p) => p.replace(/^\/+/, '') === 'policy.wasm' });
    const wasm = new Uint8Array(await readFile(join(work, 'time', 'policy.wasm')));
    const manifest = (await readBundle()).manifest;
    await expect(Engine.create({ config: fixtureConfig(), bundle: { dir: 'x', wasm, manifest } })).rejects.toMatchObject({
      code: 'ENGINE_BUNDLE_BUILTINS',
    });
  });

  it('uses the fixture config the other tests use', () => {
    expect(fixturePath).toMatch(/policy\.yaml$/);
  });
});
