/**
 * npm run bench:engine — the engine as adapters drive it (a Session per connection), in two
 * measurements, both in one run:
 *
 * 1. Latency: p50/p99 per stage through a Session (facts → cached session document → input →
 *    policy.wasm → validated decision) for data sets from 1 to 10,000 accepted domains and 1 to
 *    1,000 connectors, with OPA's Go evaluator (`opa bench`) on the same policy and data beside
 *    it: on the very input the engine evaluated (which carries the session document), and on
 *    the self-contained input a Go deployment would send (the stage computes the document).
 * 2. Instructions per message (`--callgrind`, or included unless --no-callgrind when valgrind is
 *    installed): callgrind counts instructions, which unlike time are repeatable. A message is
 *    connect + ehlo + mail + 3 rcpt + headers + eom through one Session on the example
 *    configuration. Node runs with --predictable (single-threaded, deterministic GC and JIT)
 *    and --no-liftoff (WASM compiled by the optimising tier at once, as hot code is in steady
 *    state); after a warm-up, (instructions for N2 messages − for N1) / (N2 − N1).
 *
 * Bounded: fixed iteration counts; opa bench runs its default 1 s per input.
 * Options: --quick (fewer iterations, no opa, no callgrind), --sets 10000x1000,1x1,
 * --no-callgrind, --callgrind (only the instruction count), --json FILE.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { findOpa, opaVersion } from '../../engine/build.js';
import { readBundle, shippedPolicyDir } from '../../engine/bundle.js';
import { loadConfig, parseConfig } from '../../engine/config/load.js';
import { compileData } from '../../engine/data.js';
import { parseSessionDoc } from '../../engine/decision.js';
import { Engine, stageSessionJson } from '../../engine/engine.js';
import { SessionInput, stageInputJson } from '../../engine/input.js';
import type { Session } from '../../engine/session.js';
import { STAGES, type Decision, type Facts, type Stage } from '../../engine/types.js';
import { loadWasmPolicy } from '../../engine/wasm.js';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
const ITERATIONS = quick ? 2_000 : 20_000;
const WARMUP = quick ? 500 : 3_000;
const here = fileURLToPath(import.meta.url);

interface DataSet {
  readonly domains: number;
  readonly connectors: number;
}
const ALL_SETS: readonly DataSet[] = [
  { domains: 1, connectors: 1 },
  { domains: 100, connectors: 100 },
  { domains: 10_000, connectors: 1_000 },
];
const DATA_SETS: readonly DataSet[] =
  flag('--sets') === undefined
    ? ALL_SETS
    : (flag('--sets') ?? '').split(',').map((spec) => {
        const [domains, connectors] = spec.split('x').map(Number);
        return { domains: domains ?? 1, connectors: connectors ?? 1 };
      });

/** A configuration with `domains` accepted domains and `connectors` relay connectors (+ Internet and Client). */
function configYaml(set: DataSet): string {
  const lines = ['server: { fqdn: mx.bench.test, dialect: exchange }', 'accepted_domains:'];
  for (let i = 0; i < set.domains; i++) {
    lines.push(`  - { domain: corp${i}.test, type: authoritative }`);
    if (i % 10 === 0) lines.push(`  - { domain: "*.corp${i}.test", type: internal_relay }`);
  }
  lines.push(
    'identities:',
    '  users:',
    '    - { name: alice, addresses: [alice@corp0.test], groups: [Staff], send_as: [team@corp0.test] }',
    'connectors:',
    '  - { name: Internet, usage: internet, bindings: ["0.0.0.0:25"], max_recipients_per_message: unlimited }',
    '  - { name: Client, usage: client, bindings: ["0.0.0.0:587"], message_rate_limit: unlimited }',
  );
  for (let i = 0; i < set.connectors; i++) {
    lines.push(
      `  - name: Relay ${i}`,
      '    usage: custom',
      '    bindings: ["0.0.0.0:25", "[::]:25"]',
      `    remote_ip_ranges: ["10.${i >> 8}.${i & 255}.0/24", "2001:db8:${i.toString(16)}::/48"]`,
      '    permission_groups: [AnonymousUsers]',
      '    extended_rights: [{ principal: anonymous, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }]',
    );
  }
  return `${lines.join('\n')}\n`;
}

const TLS = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };
const HEADERS: [string, string][] = [
  ['Received', 'from a by b'],
  ['Received', 'from c by d'],
  ['From', '"Someone" <someone@example.test>'],
  ['To', 'user@corp0.test'],
  ['Subject', 'quarterly report'],
  ['Date', 'Mon, 23 Nov 2026 05:00:00 +0000'],
  ['Message-ID', '<abc@example.test>'],
  ['X-MS-Exchange-Organization-SCL', '-1'],
];

interface Measurement {
  perSecond: number;
  p50: number;
  p99: number;
}

/** Time `timed` (µs) after `setup` each iteration; setup is not timed. */
async function measure(setup: () => Promise<void>, timed: () => Promise<unknown>): Promise<Measurement> {
  for (let i = 0; i < WARMUP; i++) {
    await setup();
    await timed();
  }
  const samples = new Float64Array(ITERATIONS);
  let total = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    await setup();
    const t0 = process.hrtime.bigint();
    await timed();
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    samples[i] = us;
    total += us;
  }
  samples.sort();
  return { perSecond: Math.round((ITERATIONS / total) * 1e6), p50: samples[Math.floor(ITERATIONS * 0.5)] ?? 0, p99: samples[Math.floor(ITERATIONS * 0.99)] ?? 0 };
}

/** Per stage: a setup that brings a session to just before the stage, and the stage call. */
function stagePlan(engine: Engine, set: DataSet): Record<Stage, { setup: () => Promise<void>; timed: () => Promise<Decision> }> {
  const d = Math.floor(set.domains / 2);
  const rcpt = `<user@sub.corp${Math.floor(d / 10) * 10}.test>`;
  const internet = { local: '192.0.2.1:25', remote: '198.51.100.7', tls: TLS };
  let s: Session = engine.session(internet);
  const fresh = async (init: Parameters<Engine['session']>[0]): Promise<void> => {
    await s.close();
    s = engine.session(init);
    await s.connect();
  };
  const inTx = async (rcpts: number): Promise<void> => {
    s.rset();
    await s.mail('<someone@example.test>', { SIZE: 123456 });
    for (let i = 0; i < rcpts; i++) await s.rcpt(rcpt);
  };
  let opened = false;
  return {
    connect: {
      setup: async () => {
        await s.close();
        s = engine.session(internet);
      },
      timed: () => s.connect(),
    },
    ehlo: { setup: async () => (opened ? undefined : ((opened = true), await fresh(internet))), timed: () => s.helo('mx.example.test') },
    auth: { setup: () => fresh({ local: '192.0.2.1:587', remote: '198.51.100.9', tls: TLS }), timed: () => s.auth({ mechanism: 'PLAIN', user: 'alice' }) },
    mail: { setup: async () => (await fresh(internet), undefined), timed: () => s.mail('<someone@example.test>', { SIZE: 123456 }) },
    rcpt: { setup: async () => (s.acceptedRecipients >= 3 || !s.inTransaction ? (await fresh(internet), await inTx(0)) : undefined), timed: () => s.rcpt(rcpt) },
    headers: { setup: async () => (await fresh(internet), await inTx(3)), timed: () => s.headers(HEADERS) },
    eom: { setup: async () => (await fresh(internet), await inTx(3), await s.headers(HEADERS), undefined), timed: () => s.eom(54_321) },
  };
}

interface GoFigures {
  meanUs: number;
  p50: number;
}

async function opaBench(opa: string, dir: string, stage: string, file: string): Promise<GoFigures | null> {
  try {
    const { stdout } = await run(
      opa,
      ['bench', '--format', 'json', '-d', join(shippedPolicyDir(), 'mta'), '-d', join(dir, 'data.json'), '-i', join(dir, file), `data.mta.${stage}`],
      { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
    );
    const r = JSON.parse(stdout) as { N: number; T: number; Extra: Record<string, number> };
    return { meanUs: r.T / r.N / 1000, p50: (r.Extra['histogram_timer_rego_query_eval_ns_median'] ?? 0) / 1000 };
  } catch (e) {
    console.error(`opa bench failed for ${stage}: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

/** The facts a stage's input is built from, for the Go side (the same session state as the plan). */
function stageFacts(set: DataSet): Record<Stage, Facts> {
  const d = Math.floor(set.domains / 2);
  const base = { local: '192.0.2.1:25', remote: '198.51.100.7', tls: TLS };
  const mail = { ...base, helo: 'mx.example.test', mail_from: '<someone@example.test>', mail_params: { SIZE: 123456 } };
  return {
    connect: { ...base, counters: { connections_total: 1, connections_from_source: 1 } },
    ehlo: { ...base, helo: 'mx.example.test' },
    auth: { local: '192.0.2.1:587', remote: '198.51.100.9', tls: TLS, auth: { mechanism: 'PLAIN', user: 'alice' } },
    mail,
    rcpt: { ...mail, rcpt_to: `<user@sub.corp${Math.floor(d / 10) * 10}.test>`, accepted_rcpt_count: 1 },
    headers: { ...mail, accepted_rcpt_count: 3, headers: HEADERS },
    eom: { ...mail, accepted_rcpt_count: 3, headers: HEADERS, message_size: 54_321 },
  };
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

/** One message through one Session on the example configuration: the unit of the instruction count. */
async function messageLoop(n: number): Promise<void> {
  const config = await loadConfig(join(dirname(here), '..', '..', '..', 'examples', 'northwind.yaml'));
  const engine = await Engine.create({ config });
  const message = async (): Promise<void> => {
    const s = engine.session({ local: '192.0.2.10:25', remote: '198.51.100.7', tls: TLS });
    await s.connect();
    await s.helo('mx.example.test');
    await s.mail('<someone@example.test>', { SIZE: 12345 });
    for (let r = 0; r < 3; r++) await s.rcpt(`<user${r}@northwind.test>`);
    await s.headers(HEADERS);
    const d = await s.eom(4000);
    if (d.decision !== 'accept') throw new Error(`message not accepted: ${d.reason}`);
    await s.messageAccepted();
    await s.close();
  };
  for (let i = 0; i < 3000; i++) await message();
  for (let i = 0; i < n; i++) await message();
}

/** Instructions per message under callgrind, or null when valgrind is not installed. */
async function instructionsPerMessage(): Promise<{ perMessage: number; n1: number; n2: number } | null> {
  if (!existsSync('/usr/bin/valgrind')) return null;
  const count = async (n: number): Promise<number> => {
    const { stderr } = await run(
      '/usr/bin/valgrind',
      ['--tool=callgrind', '--callgrind-out-file=/dev/null', '--smc-check=all', process.execPath, '--predictable', '--no-liftoff', here, '--message-loop', String(n)],
      { maxBuffer: 16 * 1024 * 1024, timeout: 1_800_000 },
    );
    const m = /Collected : (\d+)/.exec(stderr);
    if (m?.[1] === undefined) throw new Error(`callgrind printed no total: ${stderr.slice(-400)}`);
    return Number(m[1]);
  };
  const n1 = 1000;
  const n2 = 3000;
  const [a, b] = [await count(n1), await count(n2)];
  return { perMessage: (b - a) / (n2 - n1), n1, n2 };
}

async function latency(opa: string | null): Promise<Record<string, unknown>[]> {
  // Warm the JIT on a throwaway data set, so the first measured set is not penalised.
  {
    const warm = await Engine.create({ config: parseConfig(configYaml({ domains: 10, connectors: 10 }), 'warm.yaml') });
    const plan = stagePlan(warm, { domains: 10, connectors: 10 });
    for (const stage of STAGES) for (let i = 0; i < WARMUP * 2; i++) await plan[stage].setup().then(plan[stage].timed);
  }
  const results: Record<string, unknown>[] = [];
  const work = await mkdtemp(join(tmpdir(), 'mta-bench-'));
  try {
    for (const set of DATA_SETS) {
      const config = parseConfig(configYaml(set), `bench-${set.domains}-${set.connectors}.yaml`);
      const engine = await Engine.create({ config });
      const plan = stagePlan(engine, set);
      const dir = join(work, `${set.domains}x${set.connectors}`);
      await mkdir(dir);
      const data = compileData(config);
      await writeFile(join(dir, 'data.json'), JSON.stringify(data));
      const wasm = loadWasmPolicy((await readBundle()).wasm);
      wasm.setData(data);
      const facts = stageFacts(set);
      for (const stage of STAGES) {
        const p = plan[stage];
        await p.setup();
        const probe = await p.timed();
        if (probe.error !== undefined) throw new Error(`${stage}: ${probe.error.message}`);
        const m = await measure(p.setup, p.timed);
        // The inputs for Go: what the engine evaluated (with the session document), and the self-contained one.
        const si = SessionInput.fromFacts(facts[stage]);
        const doc = parseSessionDoc(wasm.evaluate('mta/session', si.json));
        await writeFile(join(dir, `${stage}.cached.json`), stageInputJson(stage, facts[stage], si, { sessionDoc: stageSessionJson(doc, false) }).json);
        await writeFile(join(dir, `${stage}.inline.json`), stageInputJson(stage, facts[stage], si).json);
        results.push({ ...set, stage, reason: probe.reason, ...m, dir });
      }
    }
    if (opa !== null) {
      for (const r of results) {
        r['goCached'] = await opaBench(opa, r['dir'] as string, r['stage'] as string, `${String(r['stage'])}.cached.json`);
        r['goInline'] = await opaBench(opa, r['dir'] as string, r['stage'] as string, `${String(r['stage'])}.inline.json`);
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return results;
}

/** The opa-wasm SDK's own cost for a decision-sized constant result. */
async function sdkFloor(opa: string): Promise<number | null> {
  const work = await mkdtemp(join(tmpdir(), 'mta-floor-'));
  try {
    await writeFile(join(work, 'floor.rego'), 'package floor\n\nsized := {"decision": "continue", "reason": "ok_rcpt", "recipient": {"accepted_domain_type": "internal_relay", "routed": false}}\n');
    await run(opa, ['build', '-t', 'wasm', '-O=0', '-e', 'floor/sized', '-o', join(work, 'b.tar.gz'), join(work, 'floor.rego')]);
    await tar.x({ file: join(work, 'b.tar.gz'), cwd: work, filter: (p) => p.replace(/^\/+/, '') === 'policy.wasm' });
    const floor = loadWasmPolicy(new Uint8Array(await readFile(join(work, 'policy.wasm'))));
    const input = '{"stage":"rcpt"}';
    return (await measure(async () => undefined, async () => floor.evaluate('floor/sized', input))).p50;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const loop = flag('--message-loop');
  if (loop !== undefined) return messageLoop(Number(loop));
  const onlyCallgrind = argv.includes('--callgrind');
  const withCallgrind = !quick && !argv.includes('--no-callgrind');
  const opa = quick || onlyCallgrind ? null : findOpa();
  console.log('# mta-policy engine benchmark');
  console.log(`node ${process.version}; ${ITERATIONS} timed calls per stage after ${WARMUP} warm-up; one core (Node's main thread)`);
  const json: Record<string, unknown> = {};
  if (!onlyCallgrind) {
    console.log(opa === null ? 'opa: not run' : `opa ${await opaVersion(opa)} (Go evaluator, opa bench, same policy and data)`);
    const floor = opa === null ? null : await sdkFloor(opa);
    if (floor !== null) console.log(`opa-wasm SDK floor here: ${fmt(floor, 2)} µs p50 for a decision-sized constant result`);
    const results = await latency(opa);
    console.log('');
    console.log('| domains | connectors | stage | decisions/s | p50 µs | p99 µs | Go p50 µs, same input | ratio | Go p50 µs, self-contained input | ratio |');
    console.log('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      const c = r['goCached'] as GoFigures | null | undefined;
      const i = r['goInline'] as GoFigures | null | undefined;
      const p50 = r['p50'] as number;
      delete r['dir'];
      console.log(
        `| ${String(r['domains'])} | ${String(r['connectors'])} | ${String(r['stage'])} (${String(r['reason'])}) | ${String(r['perSecond'])} | ${fmt(p50)} | ${fmt(r['p99'] as number)} | ${c ? fmt(c.p50) : '–'} | ${c ? `${fmt(c.p50 / p50)}×` : '–'} | ${i ? fmt(i.p50) : '–'} | ${i ? `${fmt(i.p50 / p50)}×` : '–'} |`,
      );
    }
    const flat = STAGES.map((stage) => {
      const p = results.filter((r) => r['stage'] === stage).map((r) => r['p50'] as number);
      return `${stage} ${fmt(Math.max(...p) / Math.min(...p), 2)}×`;
    });
    console.log('');
    console.log(`flatness (max/min p50 across data sets): ${flat.join(', ')}`);
    for (const key of ['goCached', 'goInline'] as const) {
      const ratios = results.map((r) => ((r[key] as GoFigures | null | undefined)?.p50 ?? 0) / (r['p50'] as number)).filter((x) => x > 0).sort((a, b) => a - b);
      if (ratios.length > 0) console.log(`Go p50 / engine p50, ${key === 'goCached' ? 'same input' : 'self-contained input'}: min ${fmt(ratios[0] ?? 0)}×, median ${fmt(ratios[Math.floor(ratios.length / 2)] ?? 0)}× (target ≥ 15×)`);
    }
    json['latency'] = results;
  }
  if (withCallgrind || onlyCallgrind) {
    const ins = await instructionsPerMessage();
    if (ins === null) console.log('callgrind: valgrind not installed, instruction count skipped');
    else {
      console.log(`instructions per message (connect + ehlo + mail + 3 rcpt + headers + eom through one Session, example config): ${(ins.perMessage / 1e6).toFixed(3)} M (target ≤ 1.5 M; messages ${ins.n1} → ${ins.n2} after 3000 warm-up)`);
      json['instructionsPerMessage'] = ins.perMessage;
    }
  }
  const out = flag('--json');
  if (out !== undefined) await writeFile(out, `${JSON.stringify(json, null, 2)}\n`);
}

await main();
