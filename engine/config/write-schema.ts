/**
 * Writes schema/config.schema.json, generated from the decoder definitions (engine/config/schema.ts).
 *
 *   npm run build && npm run schema
 *
 * The test suite checks that the committed file equals `schemaJsonText()`.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../bundle.js';
import { CONFIG_SCHEMA } from './schema.js';

/** Repository-relative location of the published schema. */
export const SCHEMA_FILE = join('schema', 'config.schema.json');

/** The published schema file's exact contents: 2-space JSON and a final newline. */
export function schemaJsonText(): string {
  return `${JSON.stringify(CONFIG_SCHEMA, null, 2)}\n`;
}

/** Writes the schema file under `root` and returns its path. */
export function writeSchema(root: string = projectRoot()): string {
  const file = join(root, SCHEMA_FILE);
  writeFileSync(file, schemaJsonText());
  return file;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) {
  const file = writeSchema();
  process.stdout.write(`wrote ${file}\n`);
}
