/**
 * Writes schema/config.schema.json from engine/config/schema.ts.
 *
 *   npm run build && npm run schema
 *
 * The test suite checks that the committed file equals `schemaJsonText()`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MtaPolicyError } from '../errors.js';
import { CONFIG_SCHEMA } from './schema.js';

/** Repository-relative location of the published schema. */
export const SCHEMA_FILE = join('schema', 'config.schema.json');

/** The published schema file's exact contents: 2-space JSON and a final newline. */
export function schemaJsonText(): string {
  return `${JSON.stringify(CONFIG_SCHEMA, null, 2)}\n`;
}

/** The repository root: the nearest ancestor of `start` holding this project's package.json. */
export function findRepoRoot(start: string): string {
  let dir = resolve(start);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const parsed: unknown = JSON.parse(readFileSync(pkg, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && 'name' in parsed && parsed.name === 'mta-policy') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new MtaPolicyError('SCHEMA_ROOT_NOT_FOUND', `no mta-policy package.json above ${start}`);
    dir = parent;
  }
}

/** Writes the schema file under `root` and returns its path. */
export function writeSchema(root: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)))): string {
  const file = join(root, SCHEMA_FILE);
  writeFileSync(file, schemaJsonText());
  return file;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) {
  const file = writeSchema();
  process.stdout.write(`wrote ${file}\n`);
}
