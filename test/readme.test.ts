/** The README's tables are rendered from the code that defines them (engine/docs.ts). */
import { readFileSync } from 'node:fs';
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
  });
});
