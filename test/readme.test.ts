/**
 * The README's tables are rendered from the code that defines them (engine/docs.ts), and the
 * documents extension and adapter authors read make the claims the code keeps.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { README_BLOCKS, renderReadme } from '../engine/docs.js';
import { REASONS } from '../engine/replies.js';
import { root } from './helpers/engine.js';

describe('README.md', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');

  it('carries exactly the generated tables (run npm run docs after changing them)', () => {
    expect(renderReadme(readme)).toBe(readme);
  });

  it('has every generated block, and every reason in the reasons table', () => {
    for (const name of Object.keys(README_BLOCKS)) expect(readme).toContain(`<!-- generated:${name} -->`);
    for (const reason of REASONS) expect(readme).toContain(`| \`${reason}\` |`);
  });

  it('makes no claim the project gave up', () => {
    expect(readme).not.toMatch(/not written yet/);
    expect(readme).not.toMatch(/5 µs p50 goal/);
    // Issue 5 §5: policy evaluation dominates, not JSON crossing the boundary.
    expect(readme).not.toMatch(/JSON crossing into and out of WASM dominates/);
  });

  it('describes the session entrypoint and the current layout', () => {
    const bundleSection = readme.slice(readme.indexOf('## The policy bundle'), readme.indexOf('## Performance'));
    expect(bundleSection).toContain('mta/session');
    expect(readme).not.toMatch(/^cli\/ .*scenarios\.ts/m);
  });
});

describe('the documented contracts', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const policiesReadme = readFileSync(join(root, 'policies', 'README.md'), 'utf8');

  it('the README documents multi-transaction scenarios (transactions, rset)', () => {
    const section = readme.slice(readme.indexOf('## Scenario files'), readme.indexOf('## Extending the policy'));
    expect(section).toContain('transactions');
    expect(section).toContain('rset');
  });

  it('policies/README.md documents the rights string, mta/session and input.session, and every stage input carries bits and auth', () => {
    expect(policiesReadme).not.toContain('right_bits');
    for (const text of ['right_order', 'mta/session', 'input.session', 'remote: {ip, family: "4"|"6", bits}']) expect(policiesReadme).toContain(text);
  });

  it('no engine or policy source cites a reference file outside the repository', () => {
    const sources = [
      ...readdirSync(join(root, 'engine'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join('engine', f)),
      ...readdirSync(join(root, 'policies', 'mta'), { encoding: 'utf8' }).map((f) => join('policies', 'mta', f)),
    ];
    expect(sources.length).toBeGreaterThan(20);
    for (const file of sources) expect(readFileSync(join(root, file), 'utf8'), file).not.toContain('connector-model.md');
  });
});
