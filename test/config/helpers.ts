/** Shared helpers for the configuration tests. */
import { ConfigError, formatIssue } from '../../engine/errors.js';
import type { ConfigIssue } from '../../engine/errors.js';
import { parseConfig } from '../../engine/config/load.js';
import type { Config, ConnectorConfig } from '../../engine/config/types.js';
import { isParseFailure, parseIpRange } from '../../engine/ip.js';
import type { ParsedRange, ParseFailure } from '../../engine/ip.js';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const FILE = 'test.yaml';


/** The issues parseConfig reports; fails the test when the text is accepted. */
export function issuesOf(text: string): readonly ConfigIssue[] {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

/** The single issue at `path`; fails when there is none or more than one. */
export function issueAt(text: string, path: string): ConfigIssue {
  const all = issuesOf(text);
  const found = all.filter((i) => i.path === path);
  if (found.length !== 1) {
    throw new Error(`expected one issue at ${path}, got ${found.length}:\n${all.map(formatIssue).join('\n')}`);
  }
  const [issue] = found;
  if (issue === undefined) throw new Error('unreachable');
  return issue;
}

/** 1-based line of the first line of `text` containing `needle` (`nth` occurrence, 1-based). */
export function lineOf(text: string, needle: string, nth = 1): number {
  const lines = text.split('\n');
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.includes(needle)) {
      seen++;
      if (seen === nth) return i + 1;
    }
  }
  throw new Error(`${JSON.stringify(needle)} not in text`);
}

export const HEAD = `server:
  fqdn: smtp.northwind.test
accepted_domains:
  - { domain: northwind.test }
identities:
  users:
    - { name: nancy, addresses: [nancy@northwind.test], groups: [Ops] }
    - { name: andrew, addresses: [andrew@northwind.test], groups: [Managers] }
connectors:
`;

/** HEAD plus connector YAML (already indented as list items under `connectors:`). */
export const withConnectors = (connectors: string): string => HEAD + connectors;

export const ok = (text: string): Config => parseConfig(text, FILE);

export function connector(config: Config, name: string): ConnectorConfig {
  const c = config.connectors.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no connector ${name}`);
  return c;
}

export function range(text: string): ParsedRange {
  const r = parseIpRange(text);
  if (isParseFailure(r)) throw new Error(`${text}: ${r.error}`);
  return r;
}

export function failure(r: object): ParseFailure {
  if (!isParseFailure(r)) throw new Error(`expected a failure, got ${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
  return r;
}
