import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../engine/bundle.js';
import { parseConfig } from '../../engine/config/load.js';
import type { Config } from '../../engine/config/types.js';
import { Engine } from '../../engine/engine.js';

export const root = projectRoot();
export const fixturePath = join(root, 'test', 'fixtures', 'policy.yaml');

export function fixtureConfig(): Config {
  return parseConfig(readFileSync(fixturePath, 'utf8'), fixturePath);
}

/** The engine on the real committed policy.wasm and the test configuration. */
export function fixtureEngine(): Promise<Engine> {
  return Engine.create({ config: fixtureConfig() });
}

/** Collects what a CLI command writes. */
export function captureIo(): { io: { stdout: { write(s: string): boolean }; stderr: { write(s: string): boolean } }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (s: string) => ((out += s), true) },
      stderr: { write: (s: string) => ((err += s), true) },
    },
    out: () => out,
    err: () => err,
  };
}
