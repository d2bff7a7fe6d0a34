/**
 * Loads and validates the configuration file.
 *
 *   1. engine/config/yaml.ts reads the file (bounded: size, nesting, alias expansion) into
 *      positioned nodes, with aliases resolved once.
 *   2. Each section is decoded in one pass by its definition (engine/config/decode.ts
 *      vocabulary): shape, values and the rules within it, each issue at its file:line:col
 *      with a fix. Connectors are decoded last: their defaults and principals need the server
 *      and the identities.
 *   3. The connector selection conflict check runs over the decoded connectors.
 *
 * All issues are collected and thrown together as one `ConfigError`.
 */
import { resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { At, BAD, type Decoder, type Deferred } from './decode.js';
import { Issues } from './issues.js';
import { checkConflicts } from './conflicts.js';
import { checkOpenRelayAcross } from './rights.js';
import { connectors } from './connectors.js';
import { REQUIRED_SECTIONS, ROOT } from './schema.js';
import { ACCEPTED_DOMAINS, identitiesSection, principalLookups, serverSection } from './sections.js';
import { listener } from './values.js';
import { readTextFile, readYaml } from './yaml.js';
import type { Config } from './types.js';

export { USAGE_DEFAULTS, renderUsageDefaultsTable } from './usage.js';
export { closest, formatPath } from './issues.js';
export { normaliseAddress, normaliseDomain } from './names.js';

/**
 * Parses and validates configuration text. `file` labels positions in issues and becomes
 * `Config.file`. Throws `ConfigError` listing every problem found.
 */
export function parseConfig(text: string, file: string): Config {
  const doc = readYaml(text, file);
  if (doc.root === null) throw new ConfigError(doc.issues);
  const issues = new Issues(file, doc.position);
  issues.list.push(...doc.issues);
  const root = ROOT.decode(doc.root, At.of(issues, [], doc.root.offset));
  if (root === BAD) throw issues.error();
  for (const [key, fix] of Object.entries(REQUIRED_SECTIONS)) {
    if (!root.where.has(key as keyof typeof REQUIRED_SECTIONS)) issues.add(root.where.self, `the configuration is missing required key \`${key}\``, fix);
  }
  const decode = <T>(d: Decoder<T>, section: Deferred | undefined): T | typeof BAD | undefined => (section === undefined ? undefined : d.decode(section.node, section.at));
  const server = decode(serverSection(file), root.server) ?? BAD;
  const acceptedDomains = decode(ACCEPTED_DOMAINS, root.accepted_domains) ?? [];
  const ids = decode(identitiesSection(file), root.identities) ?? { users: [], unlistedLogins: 'reject' as const };
  const milter = decode(listener('milter'), root.milter);
  const postfixPolicy = decode(listener('Postfix policy server'), root.postfix_policy);
  const env = {
    server: server === BAD ? { fqdn: 'localhost', dialect: 'exchange' as const } : server,
    // Unknown users and groups are reported only when the identities themselves are sound.
    principals: principalLookups(ids === BAD ? [] : ids.users, ids !== BAD),
    configFile: file,
    listenDefault: root.milter === undefined && root.postfix_policy === undefined,
  };
  const conns = decode(connectors(env), root.connectors) ?? BAD;
  if (conns !== BAD) {
    checkConflicts(issues, conns);
    checkOpenRelayAcross(issues, conns);
  }
  if (issues.list.length > 0 || server === BAD || acceptedDomains === BAD || ids === BAD || conns === BAD || milter === BAD || postfixPolicy === BAD) {
    throw issues.error();
  }
  return {
    file,
    server,
    acceptedDomains,
    ...ids,
    connectors: conns,
    ...(milter === undefined ? {} : { milter }),
    ...(postfixPolicy === undefined ? {} : { postfixPolicy }),
  };
}

/**
 * Reads and validates a configuration file: a regular file of at most 8 MiB of UTF-8 (a FIFO,
 * a directory or a device is refused without being read). Throws `ConfigError` when it is
 * unreadable or invalid.
 */
export async function loadConfig(file: string): Promise<Config> {
  const abs = resolve(file);
  return parseConfig(readTextFile(abs, 'the configuration file'), abs);
}
