/**
 * The README's tables of reasons, decision kinds and flag headers, rendered from the code that
 * defines them, so the documentation cannot drift (test/readme.test.ts compares;
 * `npm run docs` rewrites the README's generated blocks).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectRoot } from './bundle.js';
import { renderUsageDefaultsTable } from './config/usage.js';
import { FLAG_HEADERS } from './headers.js';
import { REPLY_CATALOGUE, REASONS } from './replies.js';
import type { Reply } from './reply.js';
import { DECISION_KIND_MEANING, DECISION_KINDS } from './types.js';

const cell = (s: string): string => s.replaceAll('|', '\\|');

function reply(r: Reply): string {
  return `${r.code}${r.enhanced === '' ? '' : ` ${r.enhanced}`} ${cell(r.text)}${r.disconnect === true ? ' *(disconnect)*' : ''}`;
}

export function renderReasonsTable(): string {
  const rows = REASONS.map((reason) => {
    const e = REPLY_CATALOGUE[reason];
    const same = JSON.stringify(e.exchange) === JSON.stringify(e.rfc);
    return `| \`${reason}\` | ${cell(e.why)} | ${reply(e.exchange)} | ${same ? 'same' : reply(e.rfc)} |`;
  });
  return ['| reason | the rule that decided | `exchange` | `rfc` |', '|---|---|---|---|', ...rows].join('\n') + '\n';
}

export function renderDecisionKindsTable(): string {
  return ['| decision | meaning |', '|---|---|', ...DECISION_KINDS.map((k) => `| \`${k}\` | ${DECISION_KIND_MEANING[k]} |`)].join('\n') + '\n';
}

export function renderFlagHeadersTable(): string {
  const rows = Object.entries(FLAG_HEADERS).map(([flag, name]) => `| \`${name}\` | \`message_flags.${flag}\` | ${flag === 'auth_as' ? 'always: `Anonymous`, `Internal` or `Partner`' : 'only when set, value `true`'} |`);
  return ['| header | from | added |', '|---|---|---|', ...rows].join('\n') + '\n';
}

/** Every generated README block: marker name → rendering. */
export const README_BLOCKS: Readonly<Record<string, () => string>> = {
  'usage-defaults': renderUsageDefaultsTable,
  reasons: renderReasonsTable,
  'decision-kinds': renderDecisionKindsTable,
  'flag-headers': renderFlagHeadersTable,
};

/** The README with every generated block re-rendered; throws when a marker is missing. */
export function renderReadme(text: string): string {
  let out = text;
  for (const [name, render] of Object.entries(README_BLOCKS)) {
    const open = `<!-- generated:${name} -->\n`;
    const close = '<!-- /generated -->';
    const start = out.indexOf(open);
    const end = start < 0 ? -1 : out.indexOf(close, start);
    if (start < 0 || end < 0) throw new Error(`README.md lacks the block ${open.trim()} … ${close}`);
    out = out.slice(0, start + open.length) + render() + out.slice(end);
  }
  return out;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = join(projectRoot(), 'README.md');
  writeFileSync(file, renderReadme(readFileSync(file, 'utf8')));
  console.log(`rewrote the generated blocks of ${file}`);
}
