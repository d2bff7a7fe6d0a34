/**
 * npm run bench:engine — decisions per second and p50/p99 latency per stage through the real
 * engine (facts → input → policy.wasm → validated decision), for data sets from 1 to 10,000
 * accepted domains and 1 to 1,000 connectors, with OPA's Go evaluator (`opa bench`) on the
 * same policy, data and input beside it in the same run.
 *
 * Bounded: a fixed number of iterations per measurement; opa bench runs for its default 1 s.
 * Options: --quick (fewer iterations, no opa), --json FILE (write the figures).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readBundle, shippedPolicyDir } from '../../engine/bundle.js';
import { findOpa, opaVersion } from '../../engine/build.js';
import { parseConfig } from '../../engine/config/load.js';
import { compileData } from '../../engine/data.js';
import { Engine } from '../../engine/engine.js';
import { buildInput } from '../../engine/input.js';
import { loadWasmPolicy } from '../../engine/wasm.js';
import * as tar from 'tar';
import { readFile } from 'node:fs/promises';
import { STAGES, type Facts, type Stage } from '../../engine/types.js';

const run = promisify(execFile);
const quick = process.argv.includes('--quick');
const jsonFlag = process.argv.indexOf('--json');
const jsonOut = jsonFlag === -1 ? undefined : process.argv[jsonFlag + 1];
const ITERATIONS = quick ? 2_000 : 30_000;
const WARMUP = quick ? 500 : 5_000;

interface DataSet {
  readonly domains: number;
  readonly connectors: number;
}

const ALL_SETS: readonly DataSet[] = [
  { domains: 1, connectors: 1 },
  { domains: 100, connectors: 100 },
  { domains: 10_000, connectors: 1_000 },
  { domains: 10_000, connectors: 1 },
  { domains: 1, connectors: 1_000 },
];
/** `--sets 10000x1000,1x1` runs only those data sets (domains x connectors). */
const setsFlag = process.argv.indexOf('--sets');
const DATA_SETS: readonly DataSet[] =
  setsFlag === -1
    ? ALL_SETS
    : (process.argv[setsFlag + 1] ?? '').split(',').map((spec) => {
        const [domains, connectors] = spec.split('x').map(Number);
        return { domains: domains ?? 1, connectors: connectors ?? 1 };
      });

/** A configuration with `domains` accepted domains and `connectors` relay connectors (+ Internet and Client). */
function configYaml(set: DataSet): string {
  const lines = [
    'server: { fqdn: mx.bench.test, dialect: exchange }',
    'accepted_domains:',
  ];
  for (let i = 0; i < set.domains; i++) {
    lines.push(`  - { domain: corp${i}.test, type: authoritative }`);
    if (i % 10 === 0) lines.push(`  - { domain: "*.corp${i}.test", type: internal_relay }`);
  }
  lines.push(
    'identities:',
    '  users:',
    '    - { name: alice, addresses: [alice@corp0.test], groups: [Staff], send_as: [team@corp0.test] }',
    'connectors:',
    '  - { name: Internet, usage: internet, bindings: ["0.0.0.0:25"] }',
    '  - { name: Client, usage: client, bindings: ["0.0.0.0:587"] }',
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

/** Representative facts per stage; lookups aim at the middle of the data. */
function stageFacts(set: DataSet): Record<Stage, Facts> {
  const c = Math.floor(set.connectors / 2);
  const d = Math.floor(set.domains / 2);
  const wildcardDomain = Math.floor(d / 10) * 10;
  const relay: Facts = { local: '192.0.2.1:25', remote: `10.${c >> 8}.${c & 255}.7` };
  const internet: Facts = { local: '192.0.2.1:25', remote: '198.51.100.7' };
  const client: Facts = {
    local: '192.0.2.1:587',
    remote: '198.51.100.9',
    tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    auth: { mechanism: 'PLAIN', user: 'alice' },
  };
  const headers = {
    From: '"Someone" <someone@example.test>',
    To: `user@corp${d}.test`,
    Subject: 'quarterly report',
    Date: 'Mon, 23 Nov 2026 05:00:00 +0000',
    'Message-ID': '<abc@example.test>',
    Received: ['from a by b', 'from c by d', 'from e by f'],
    'X-MS-Exchange-Organization-SCL': '-1',
  };
  return {
    connect: { local: relay.local, remote: relay.remote },
    ehlo: { ...relay, helo: 'scanner.example.test' },
    auth: client,
    mail: { ...client, mail_from: '<alice@corp0.test>', mail_params: { SIZE: 123456 } },
    rcpt: { ...internet, mail_from: '<someone@example.test>', rcpt_to: `<user@sub.corp${wildcardDomain}.test>`, accepted_rcpt_count: 3 },
    headers: { ...internet, mail_from: '<someone@example.test>', accepted_rcpt_count: 1, headers },
    eom: { ...internet, mail_from: '<someone@example.test>', accepted_rcpt_count: 1, headers, message_size: 54321 },
  };
}

interface Measurement {
  perSecond: number;
  p50: number;
  p99: number;
}

function measure(fn: () => void): Measurement {
  for (let i = 0; i < WARMUP; i++) fn();
  const samples = new Float64Array(ITERATIONS);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  const totalUs = Number(process.hrtime.bigint() - start) / 1000;
  samples.sort();
  return {
    perSecond: Math.round((ITERATIONS / totalUs) * 1e6),
    p50: samples[Math.floor(ITERATIONS * 0.5)] ?? 0,
    p99: samples[Math.floor(ITERATIONS * 0.99)] ?? 0,
  };
}

interface GoFigures {
  meanUs: number;
  p50: number;
  p99: number;
}

async function opaBench(opa: string, dir: string, stage: Stage): Promise<GoFigures | null> {
  // dir holds data.json and <stage>.json (the exact input the engine evaluated).
  try {
    const { stdout } = await run(
      opa,
      ['bench', '--format', 'json', '-d', join(shippedPolicyDir(), 'mta'), '-d', join(dir, 'data.json'), '-i', join(dir, `${stage}.json`), `data.mta.${stage}`],
      { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
    );
    const r = JSON.parse(stdout) as { N: number; T: number; Extra: Record<string, number> };
    return {
      meanUs: r.T / r.N / 1000,
      p50: (r.Extra['histogram_timer_rego_query_eval_ns_median'] ?? 0) / 1000,
      p99: (r.Extra['histogram_timer_rego_query_eval_ns_99%'] ?? 0) / 1000,
    };
  } catch (e) {
    console.error(`opa bench failed for ${stage}: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

/**
 * The SDK's own cost per call on this machine: a policy that returns a constant, and one that
 * returns a decision-sized constant, through the same opa-wasm evaluate().
 */
async function sdkFloor(opa: string): Promise<{ trivial: Measurement; sized: Measurement } | null> {
  const work = await mkdtemp(join(tmpdir(), 'mta-floor-'));
  try {
    await writeFile(
      join(work, 'floor.rego'),
      'package floor\n\ntrivial := {"decision": "continue"}\n\nsized := {"decision": "continue", "reason": "ok_rcpt", "reply": {"code": 250, "enhanced": "2.1.5", "text": "Recipient OK"}, "connector": "Default Frontend", "principals": ["anonymous"], "rights": 15, "recipient": {"address": "user@sub.corp10.test", "domain": "sub.corp10.test", "accepted_domain_type": "internal_relay", "routed": false}}\n',
    );
    await run(opa, ['build', '-t', 'wasm', '-O=0', '-e', 'floor/trivial', '-e', 'floor/sized', '-o', join(work, 'b.tar.gz'), join(work, 'floor.rego')]);
    await tar.x({ file: join(work, 'b.tar.gz'), cwd: work, filter: (p) => p.replace(/^\/+/, '') === 'policy.wasm' });
    const floor = loadWasmPolicy(new Uint8Array(await readFile(join(work, 'policy.wasm'))));
    const input = { stage: 'rcpt' };
    return { trivial: measure(() => floor.evaluate('floor/trivial', input)), sized: measure(() => floor.evaluate('floor/sized', input)) };
  } catch (e) {
    console.error(`floor measurement failed: ${(e as Error).message.split('\n')[0]}`);
    return null;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const opa = quick ? null : findOpa();
  console.log(`# mta-policy engine benchmark`);
  console.log(`node ${process.version}, ${ITERATIONS} decisions per measurement after ${WARMUP} warm-up; one core (Node's main thread)`);
  console.log(opa === null ? 'opa: not run' : `opa ${await opaVersion(opa)} (Go evaluator, opa bench, same policy/data/input)`);
  // Warm the JIT on a throwaway data set so the first measured one is not penalised.
  {
    const warm = await Engine.create({ config: parseConfig(configYaml({ domains: 10, connectors: 10 }), 'warm.yaml') });
    const f = stageFacts({ domains: 10, connectors: 10 });
    for (let i = 0; i < WARMUP * 4; i++) for (const stage of STAGES) warm.decide(stage, f[stage]);
  }
  const floor = opa === null ? null : await sdkFloor(opa);
  if (floor !== null) {
    console.log(
      `opa-wasm SDK floor on this machine: constant result ${fmt(floor.trivial.p50, 2)} µs p50; decision-sized constant result ${fmt(floor.sized.p50, 2)} µs p50`,
    );
  }
  // Pass 1: every engine measurement, with nothing else running. Pass 2: opa bench on the same
  // inputs. Interleaving them let the Go runs disturb the next Node measurements.
  const results: Record<string, unknown>[] = [];
  const work = await mkdtemp(join(tmpdir(), 'mta-bench-'));
  try {
    for (const set of DATA_SETS) {
      const t0 = Date.now();
      const config = parseConfig(configYaml(set), `bench-${set.domains}-${set.connectors}.yaml`);
      const loadMs = Date.now() - t0;
      const engine = await Engine.create({ config });
      const wasm = loadWasmPolicy((await readBundle()).wasm);
      wasm.setData(compileData(config));
      const facts = stageFacts(set);
      const dir = join(work, `${set.domains}x${set.connectors}`);
      await mkdir(dir);
      await writeFile(join(dir, 'data.json'), JSON.stringify(compileData(config)));
      for (const stage of STAGES) {
        const f = facts[stage];
        const probe = engine.decide(stage, f);
        if (probe.error !== undefined) throw new Error(`${stage}: ${probe.error.message}`);
        const m = measure(() => engine.decide(stage, f));
        const input = buildInput(stage, f);
        const wasmOnly = measure(() => wasm.evaluate(`mta/${stage}`, input));
        await writeFile(join(dir, `${stage}.json`), JSON.stringify(input));
        results.push({ ...set, stage, reason: probe.reason, ...m, wasmP50: wasmOnly.p50, go: null, ratio: null, configLoadMs: loadMs, dir });
      }
    }
    if (opa !== null) {
      for (const r of results) {
        const go = await opaBench(opa, r['dir'] as string, r['stage'] as Stage);
        r['go'] = go;
        r['ratio'] = go === null ? null : go.p50 / (r['p50'] as number);
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log('');
  console.log('| domains | connectors | stage | decisions/s | p50 µs | p99 µs | of which policy.wasm p50 µs | opa Go p50 µs | opa Go mean µs | Go p50 / engine p50 |');
  console.log('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const go = r['go'] as GoFigures | null;
    const ratio = r['ratio'] as number | null;
    delete r['dir'];
    console.log(
      `| ${String(r['domains'])} | ${String(r['connectors'])} | ${String(r['stage'])} (${String(r['reason'])}) | ${String(r['perSecond'])} | ${fmt(r['p50'] as number)} | ${fmt(r['p99'] as number)} | ${fmt(r['wasmP50'] as number)} | ${go === null ? '–' : fmt(go.p50)} | ${go === null ? '–' : fmt(go.meanUs)} | ${ratio === null ? '–' : `${fmt(ratio)}×`} |`,
    );
  }
  console.log('');
  // Flatness: per stage, largest over smallest p50 across data sets.
  const flat = STAGES.map((stage) => {
    const p = results.filter((r) => r['stage'] === stage).map((r) => r['p50'] as number);
    return `${stage} ${fmt(Math.max(...p) / Math.min(...p), 2)}×`;
  });
  console.log(`flatness (max/min p50 across data sets): ${flat.join(', ')}`);
  const worst = Math.max(...results.map((r) => r['p50'] as number));
  console.log(`worst p50 of any stage on any data set: ${fmt(worst, 2)} µs (target 5 µs)`);
  console.log(`config load (parse + validate) for the largest data set: ${String(results.at(-1)?.['configLoadMs'] ?? '?')} ms`);
  const ratios = results.map((r) => r['ratio']).filter((x): x is number => typeof x === 'number');
  if (ratios.length > 0) console.log(`Go evaluator p50 / WASM engine p50: min ${fmt(Math.min(...ratios))}×, median ${fmt(ratios.sort((a, b) => a - b)[Math.floor(ratios.length / 2)] ?? 0)}×`);
  if (jsonOut !== undefined && jsonOut !== '' && !jsonOut.startsWith('-')) await writeFile(jsonOut, `${JSON.stringify(results, null, 2)}\n`);
}

await main();
