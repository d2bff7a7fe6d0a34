import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { digestShippedSources, readBundle } from '../engine/bundle.js';
import { fixturesFile, fixturesText } from './fixtures/policy-fixtures.js';

describe('generated files are current', () => {
  it('policies/test/fixtures.json matches what the engine code produces', () => {
    expect(readFileSync(fixturesFile(), 'utf8'), 'run: npm run policies:build').toBe(fixturesText());
  });

  it('the committed bundle was built from the current policy sources', async () => {
    const bundle = await readBundle();
    expect(bundle.manifest.sources_sha256).toBe(await digestShippedSources());
  });
});
