import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, formatIssue } from '../../engine/errors.js';
import type { ConfigIssue } from '../../engine/errors.js';
import { loadConfig, parseConfig } from '../../engine/config/load.js';
import { YAML_LIMITS } from '../../engine/config/yaml.js';
import { FILE, ROOT, lineOf, ok, withConnectors } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mta-policy-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The issues `loadConfig` throws for `file`. */
async function loadIssues(file: string): Promise<readonly ConfigIssue[]> {
  const err: unknown = await loadConfig(file).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(err)}`);
  return err.issues;
}

function parseIssues(text: string): readonly ConfigIssue[] {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

/** Every rendered issue line is short, whatever the input (no input is echoed whole). */
function expectShort(issues: readonly ConfigIssue[]): void {
  expect(issues.length).toBeGreaterThan(0);
  for (const i of issues) expect(formatIssue(i).length, formatIssue(i).slice(0, 300)).toBeLessThan(400);
}

describe('loadConfig', () => {
  it('an unreadable file is a ConfigError', async () => {
    const missing = join(ROOT, 'examples', 'does-not-exist.yaml');
    const err: unknown = await loadConfig(missing).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    if (!(err instanceof ConfigError)) return;
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues[0]?.file).toBe(missing);
    expect(err.message).toContain('cannot read the configuration file: the file does not exist');
  });

  it('ConfigError message names the first issue and counts the rest', () => {
    const text = withConnectors('  - { name: A, usage: nope }\n  - { name: B, usage: nope }\n');
    try {
      parseConfig(text, FILE);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect(String(e instanceof Error ? e.message : e)).toMatch(new RegExp(`^${FILE}:${lineOf(text, 'name: A')}:\\d+: connectors\\[0\\]\\.usage: .*\\(and 1 more\\)$`));
    }
  });
});

describe('the loader refuses what it cannot read safely', () => {
  it('a file over the size limit, naming the limit, without reading it', async () => {
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(YAML_LIMITS.maxBytes)}\n`);
    const [issue] = await loadIssues(big);
    expect(issue?.message).toContain('more than the limit of 8.0 MiB');
    expect(parseIssues(`# ${'x'.repeat(YAML_LIMITS.maxBytes)}\n`)[0]?.message).toContain('8.0 MiB');
  });

  it('a FIFO, a directory and a device, without hanging or reading them', async () => {
    const fifo = join(dir, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    expect((await loadIssues(fifo))[0]?.message).toContain('it is a FIFO, not a regular file');
    expect((await loadIssues(dir))[0]?.message).toContain('it is a directory');
    expect((await loadIssues('/dev/zero'))[0]?.message).toContain('it is a device, not a regular file');
  });

  it('binary files and huge values are never echoed whole', async () => {
    const binary = join(dir, 'binary.yaml');
    writeFileSync(binary, Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 256)));
    const bin = await loadIssues(binary);
    expect(bin[0]?.message).toContain('not UTF-8');
    expectShort(bin);
    expectShort(parseIssues(`server: { fqdn: a.test }\nconnectors: []\n\u0000${'x'.repeat(100_000)}\n`));
    const huge = 'z'.repeat(1_000_000);
    for (const text of [
      `server:\n  fqdn: ${huge}\nconnectors: []\n`,
      `server: { fqdn: a.test, "${huge}": 1 }\nconnectors: []\n`,
      `server: { fqdn: a.test }\nconnectors:\n  - { name: A, usage: client, require_tls: "${huge}" }\n`,
      `server: { fqdn: a.test }\nconnectors:\n  - { name: A, usage: client, bindings: ["${huge}"] }\n`,
      `${huge}\n`,
      `server: { fqdn: a.test }\nconnectors: [${'{'.repeat(50)}\n`,
    ]) {
      expectShort(parseIssues(text));
    }
  });

  it('deep nesting is a clear error, not a stack overflow', () => {
    const base = 'server: { fqdn: a.test }\nconnectors: []\nx: ';
    const cases: [string, number][] = [
      [`${base}${'['.repeat(100_000)}${']'.repeat(100_000)}\n`, 3],
      [`${base}\n${'- '.repeat(20_000)}x\n`, 4],
      [`${base}\n${Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} 1\n`, 4 + YAML_LIMITS.maxDepth],
    ];
    for (const [text, line] of cases) {
      const issues = parseIssues(text);
      expect(issues.map((i) => i.message)).toEqual([`nested too deeply (more than ${YAML_LIMITS.maxDepth} levels of lists and mappings)`]);
      expect(issues[0]?.line).toBe(line);
    }
  });

  it('alias expansion is bounded ("billion laughs"), and aliases must resolve', () => {
    let text = 'server: { fqdn: a.test }\nconnectors: []\nlol: &l0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i <= 8; i++) text += `lol${i}: &l${i} [${Array.from({ length: 10 }, () => `*l${i - 1}`).join(', ')}]\n`;
    expect(parseIssues(text).map((i) => i.message)).toEqual([`the aliases (*name) expand the document to more than ${YAML_LIMITS.maxNodes} values`]);
    expect(parseIssues('server: { fqdn: a.test }\nconnectors: &c [*c]\n')[0]?.message).toContain('is inside the node its anchor names');
    expect(parseIssues('server: { fqdn: a.test }\nconnectors: *nope\n')[0]?.message).toBe('unknown alias `*nope`');
  });

  it('YAML merge keys are not supported, and say so', () => {
    const issues = parseIssues('server: { fqdn: a.test }\nconnectors:\n  - { <<: { name: A }, usage: client }\n');
    expect(issues.find((i) => i.path === 'connectors[0]["<<"]')?.fix).toContain('merge keys');
  });

  it('a list under an anchor reused by 98 connectors is resolved once and decoded for each', () => {
    // ~21 KB: one 1,000-entry anchor list, referenced by 97 more connectors.
    const entries = Array.from({ length: 1000 }, (_, i) => `      - 10.0.${i >> 8}.${i & 255}\n`).join('');
    let body = `  - name: C0\n    usage: custom\n    bindings: ["0.0.0.0:2000"]\n    remote_ip_ranges: &ranges\n${entries}`;
    for (let c = 1; c < 98; c++) body += `  - { name: C${c}, usage: custom, bindings: ["0.0.0.0:${2000 + c}"], remote_ip_ranges: *ranges }\n`;
    const text = withConnectors(body);
    expect(text.length).toBeGreaterThan(20_000);
    const config = ok(text);
    expect(config.connectors).toHaveLength(98);
    for (const c of config.connectors) expect(c.remoteIpRanges).toHaveLength(1000);
    const last = config.connectors[97]?.remoteIpRanges[999];
    expect(last?.text).toBe('10.0.3.231');
    expect(last?.source).toEqual({ file: FILE, line: lineOf(text, '- 10.0.3.231'), path: 'connectors[97].remote_ip_ranges[999]' });
  });
});
