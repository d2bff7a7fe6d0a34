/**
 * The configuration snippets of docs/mta-integration.md, parsed, so that the peer tests and
 * `bench:milter` run exactly what the documentation tells an admin to paste (they override only
 * the socket addresses and ports, and say which else). Each snippet is the fenced block after a
 * `<!-- snippet:NAME -->` line. Pure: reads the file once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseListen, postfixEndpoint } from '../../adapters/milter/listen.js';
import { projectRoot } from '../../engine/bundle.js';

export const MTA_INTEGRATION_DOC = join(projectRoot(), 'docs', 'mta-integration.md');

let cached: string | undefined;
const doc = (): string => (cached ??= readFileSync(MTA_INTEGRATION_DOC, 'utf8'));

/** The text of snippet `name` (without its fences). Throws when the marker or block is missing. */
export function snippet(name: string): string {
  const text = doc();
  const marker = `<!-- snippet:${name} -->`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`${MTA_INTEGRATION_DOC}: no ${marker}`);
  const m = /^```[^\n]*\n([\s\S]*?)^```$/m.exec(text.slice(at + marker.length));
  if (m?.[1] === undefined) throw new Error(`${MTA_INTEGRATION_DOC}: no fenced block after ${marker}`);
  return m[1];
}

/** The mta-policy keys of the `mta-policy.yaml` snippet (`milter`, `postfix_policy`). */
export function docMtaPolicyKeys(): Record<string, { listen: string }> {
  return parseYaml(snippet('mta-policy.yaml')) as Record<string, { listen: string }>;
}

/** `main.cf` parameters of the Postfix snippet, in order (continuation lines joined, comments dropped). */
export function docPostfixMain(): Record<string, string> {
  const out: Record<string, string> = {};
  let last: string | undefined;
  for (const line of snippet('postfix-main.cf').split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (/^\s/.test(line) && last !== undefined) {
      out[last] = `${out[last]} ${line.trim()}`;
      continue;
    }
    const m = /^([a-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (m === null) throw new Error(`postfix-main.cf snippet: cannot read ${JSON.stringify(line)}`);
    last = m[1] as string;
    out[last] = (m[2] as string).trim();
  }
  return out;
}

/** Where Postfix reaches mta-policy in the doc: the mta-policy snippet's listen addresses as `main.cf` writes them. */
export function docEndpoints(): { milter: string; policy: string } {
  const keys = docMtaPolicyKeys();
  return { milter: postfixEndpoint(parseListen(keys['milter']?.listen ?? '')), policy: postfixEndpoint(parseListen(keys['postfix_policy']?.listen ?? '')) };
}

/** Where a test's listeners are, as `main.cf` writes them (`inet:127.0.0.1:PORT`, `unix:/path`). */
export interface Endpoints {
  readonly milter: string;
  readonly policy: string;
}

/**
 * The `main.cf` snippet with the doc's listen addresses (docEndpoints) replaced by `at`, and
 * nothing else changed: what a test or the benchmark runs. Throws unless the snippet names the
 * milter in `smtpd_milters` and the policy service in `smtpd_relay_restrictions`, so a doc that
 * drifts from its own mta-policy snippet fails every peer test.
 */
export function docPostfixMainAt(at: Endpoints): Record<string, string> {
  const doc = docEndpoints();
  const main = docPostfixMain();
  if (!(main['smtpd_milters'] ?? '').split(/[\s,]+/).includes(doc.milter)) throw new Error(`postfix-main.cf snippet: smtpd_milters does not name ${doc.milter}`);
  const relay = restrictionList(main['smtpd_relay_restrictions'] ?? '');
  if (!relay.includes(`check_policy_service ${doc.policy}`)) throw new Error(`postfix-main.cf snippet: smtpd_relay_restrictions has no check_policy_service ${doc.policy}`);
  const swap = (v: string): string => v.split(/(\s+|,)/).map((w) => (w === doc.milter ? at.milter : w === doc.policy ? at.policy : w)).join('');
  return Object.fromEntries(Object.entries(main).map(([k, v]) => [k, swap(v)]));
}

/** The snippet's `smtpd_relay_restrictions` with the policy service at `policy` (for a Postfix without the milter). */
export function docRelayRestrictionsAt(policy: string): string {
  return docPostfixMainAt({ milter: docEndpoints().milter, policy })['smtpd_relay_restrictions'] ?? '';
}

/** The services of the `master.cf` snippet: name → its `-o` overrides. */
export function docPostfixServices(): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let current: Record<string, string> | undefined;
  for (const line of snippet('postfix-master.cf').split('\n')) {
    if (line.trim() === '') continue;
    const o = /^\s+-o\s+([a-z0-9_]+)=(\S*)\s*$/.exec(line);
    if (o !== null && current !== undefined) {
      current[o[1] as string] = o[2] as string;
      continue;
    }
    const svc = /^([a-z0-9_.:-]+)\s+inet\s/.exec(line);
    if (svc === null) throw new Error(`postfix-master.cf snippet: cannot read ${JSON.stringify(line)}`);
    current = out[svc[1] as string] = {};
  }
  return out;
}

/** The Sendmail snippet: macro lists per `confMILTER_MACROS_<STAGE>` and INPUT_MAIL_FILTER's name and `S=`/`F=`/`T=`. */
export function docSendmail(): { macros: Record<string, string[]>; filter: { name: string; socket: string; flags: string; timeouts: string } } {
  const macros: Record<string, string[]> = {};
  let filter: { name: string; socket: string; flags: string; timeouts: string } | undefined;
  for (const line of snippet('sendmail.mc').split('\n')) {
    if (line.trim() === '') continue;
    const d = /^define\(`confMILTER_MACROS_([A-Z]+)', `([^']*)'\)dnl$/.exec(line);
    if (d !== null) {
      macros[d[1] as string] = (d[2] as string).split(',').map((s) => s.trim());
      continue;
    }
    const f = /^INPUT_MAIL_FILTER\(`([^']+)', `([^']*)'\)dnl$/.exec(line);
    if (f === null) throw new Error(`sendmail.mc snippet: cannot read ${JSON.stringify(line)}`);
    const eq = Object.fromEntries((f[2] as string).split(/,\s*/).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    filter = { name: f[1] as string, socket: eq['S'] ?? '', flags: eq['F'] ?? '', timeouts: eq['T'] ?? '' };
  }
  if (filter === undefined) throw new Error('sendmail.mc snippet: no INPUT_MAIL_FILTER');
  return { macros, filter };
}

/** `smtpd_relay_restrictions` as a list of restrictions (`check_policy_service inet:…` is one). */
export function restrictionList(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const words = part.split(/\s+/);
    for (let i = 0; i < words.length; i++) {
      const w = words[i] as string;
      if (w === 'check_policy_service' && words[i + 1] !== undefined) out.push(`${w} ${words[++i] as string}`);
      else out.push(w);
    }
  }
  return out;
}
