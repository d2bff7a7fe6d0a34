/**
 * Loads and validates the configuration file.
 *
 *   1. YAML (`yaml` parseDocument with a LineCounter, so every value keeps its position).
 *      Syntax errors and duplicate keys become issues.
 *   2. JSON Schema (engine/config/schema.ts, ajv, allErrors). Each ajv error is turned into a
 *      human message at the line of the offending key or value, with a fix.
 *   3. Semantic checks in TypeScript: IP ranges, bindings, domains, addresses, identities,
 *      principals, rights, reply overrides, auth-mechanism rules and connector selection
 *      conflicts. Parts that failed step 2 are skipped here, so one mistake is reported once.
 *
 * All issues are collected and thrown together as one `ConfigError`.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import type { SchemaObject, ValidateFunction } from 'ajv/dist/2020.js';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';
import type { Config } from './types.js';
import { CONFIG_SCHEMA } from './schema.js';
import { checkConflicts } from './conflicts.js';
import { buildConnectors } from './connectors.js';
import { Context } from './context.js';
import { isRecord } from './messages.js';
import { buildAcceptedDomains, buildServer, buildUsers } from './sections.js';

export { USAGE_DEFAULTS } from './connectors.js';
export { closest, formatPath } from './messages.js';
export { normaliseAddress, normaliseDomain } from './names.js';

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Parses and validates configuration text. `file` labels positions in issues and becomes
 * `Config.file`. Throws `ConfigError` listing every problem found.
 */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const ctx = new Context(file, doc, lineCounter);

  let fatal = false;
  for (const err of doc.errors) {
    if (err.code === 'DUPLICATE_KEY') ctx.duplicateKey(err.pos[0]);
    else if (err.code === 'MULTIPLE_DOCS') {
      fatal = true;
      ctx.addAt(err.pos[0], [], 'the file holds more than one YAML document (a second `---`)', 'keep one document per configuration file');
    } else {
      fatal = true;
      ctx.addAt(err.pos[0], ctx.pathAt(err.pos[0]), `YAML syntax error: ${err.message}`, 'fix the YAML syntax at this position');
    }
  }
  if (fatal) throw ctx.error();

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // yaml refuses alias explosions ("billion laughs") here.
    ctx.add([], `the YAML cannot be expanded: ${err instanceof Error ? err.message : String(err)}`, 'use fewer aliases (*name)');
    throw ctx.error();
  }
  const validate = validator();
  if (!validate(data)) {
    for (const e of validate.errors ?? []) ctx.ajvError(e, data);
  }

  const config = buildConfig(ctx, data);
  if (ctx.issues.length > 0) throw ctx.error();
  return config;
}

/** Reads and validates a configuration file. Throws `ConfigError` when it is unreadable or invalid. */
export async function loadConfig(file: string): Promise<Config> {
  const abs = resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    const why =
      code === 'ENOENT'
        ? 'the file does not exist'
        : code === 'EISDIR'
          ? 'it is a directory, not a file'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : err instanceof Error
              ? err.message
              : String(err);
    throw new ConfigError(
      [{ file: abs, path: '', message: `cannot read the configuration file: ${why}`, fix: 'check the path and its permissions' }],
      { cause: err },
    );
  }
  return parseConfig(text, abs);
}

// ---------------------------------------------------------------------------------------------
// Schema validator
// ---------------------------------------------------------------------------------------------

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv2020.default({
      allErrors: true,
      verbose: true,
      strict: true,
      strictRequired: false,
      allowUnionTypes: true,
      // Each $defs entry compiles once instead of being inlined at every use: halves compile time.
      inlineRefs: false,
    });
    compiled = ajv.compile(CONFIG_SCHEMA as SchemaObject);
  }
  return compiled;
}

// ---------------------------------------------------------------------------------------------
// Building the Config
// ---------------------------------------------------------------------------------------------

function buildConfig(ctx: Context, data: unknown): Config {
  const root = isRecord(data) ? data : {};
  const server = buildServer(ctx, root['server']);
  const acceptedDomains = buildAcceptedDomains(ctx, root['accepted_domains']);
  const { users, identitiesClean } = buildUsers(ctx, root['identities']);
  const connectors = buildConnectors(ctx, root['connectors'], server, users, identitiesClean);
  checkConflicts(ctx, connectors);
  const identities = isRecord(root['identities']) ? root['identities'] : {};
  const unlistedLogins = identities['unlisted_logins'] === 'authenticated' ? 'authenticated' : 'reject';
  return { file: ctx.file, server, acceptedDomains, users, unlistedLogins, connectors: connectors.map((c) => c.config) };
}
