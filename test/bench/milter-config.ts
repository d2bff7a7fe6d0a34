/**
 * Configurations derived from examples/northwind.yaml for the milter tests and `bench:milter`:
 * the same connectors, identities and rights, with chosen connectors re-bound to the loopback
 * ports a private Postfix or Sendmail listens on (a milter selects the connector by the MTA's
 * `{daemon_addr}`/`{daemon_port}`, so the bindings must name the MTA's listeners) and any other
 * connector keys overridden. The example's comments are kept; the text is checked by the
 * configuration loader like any file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isSeq, parseDocument } from 'yaml';
import { projectRoot } from '../../engine/bundle.js';
import { parseConfig } from '../../engine/config/load.js';
import type { Config } from '../../engine/config/types.js';

/** The example's connector names the tests use. */
export const NORTHWIND = {
  internet: 'Default Frontend SMTP01',
  client: 'Client Frontend SMTP01',
  lan: 'Internal Relay LAN',
  partner: 'Partner Fabrikam',
  scanner: 'Scanner Relay',
} as const;

export const NORTHWIND_FILE = join(projectRoot(), 'examples', 'northwind.yaml');

/** Connector name → keys to set (e.g. `{ bindings: ['127.0.0.1:2525'], max_message_size: '2KB' }`). */
export type ConnectorOverrides = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** The example's YAML with `overrides` applied to its connectors, and `top` keys (e.g. `milter`) set. */
export function northwindText(overrides: ConnectorOverrides = {}, top: Readonly<Record<string, unknown>> = {}): string {
  const doc = parseDocument(readFileSync(NORTHWIND_FILE, 'utf8'));
  const connectors = doc.get('connectors');
  if (!isSeq(connectors)) throw new Error(`${NORTHWIND_FILE}: connectors is not a list`);
  const left = new Set(Object.keys(overrides));
  for (const item of connectors.items) {
    if (!isMap(item)) continue;
    const name = String(item.get('name'));
    const o = overrides[name];
    if (o === undefined) continue;
    left.delete(name);
    for (const [k, v] of Object.entries(o)) item.set(k, doc.createNode(v));
  }
  if (left.size > 0) throw new Error(`no connector named ${[...left].join(', ')} in ${NORTHWIND_FILE}`);
  for (const [k, v] of Object.entries(top)) doc.set(k, doc.createNode(v));
  return doc.toString();
}

/** The derived configuration, loaded and validated. */
export function northwindConfig(overrides: ConnectorOverrides = {}, top: Readonly<Record<string, unknown>> = {}): Config {
  return parseConfig(northwindText(overrides, top), NORTHWIND_FILE);
}
