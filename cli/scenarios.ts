import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, type ConfigIssue } from '../engine/errors.js';
import type { Engine } from '../engine/engine.js';
import { STAGES, type Decision, type DecisionKind, type Facts, type Stage } from '../engine/types.js';
import { formatReply } from './explain.js';

/**
 * Scenario files: teams describe SMTP sessions and what the policy must decide at each stage
 * (README, "Scenario files"). The runner drives the engine through the stages in SMTP order,
 * carrying state (connector, authentication, accepted recipients) as a real session would.
 */

export type Expected = DecisionKind | 'not_reached';

export interface StageExpectation {
  readonly decision?: Expected;
  readonly code?: number;
  readonly enhanced?: string;
  readonly reason?: string;
  readonly text?: string;
}

export interface Scenario {
  readonly name: string;
  readonly file: string;
  readonly line: number;
  readonly session: ScenarioSession;
  readonly expect: {
    readonly connector?: string | null;
    readonly stages: Partial<Record<Exclude<Stage, 'rcpt'>, StageExpectation>>;
    readonly rcpt: Readonly<Record<string, StageExpectation>>;
  };
}

export interface ScenarioSession {
  readonly local: string;
  readonly remote: string;
  readonly tls?: Facts['tls'];
  readonly auth?: Facts['auth'];
  readonly helo?: string;
  readonly mail_from?: string;
  readonly mail_params?: Facts['mail_params'];
  readonly rcpt_to?: readonly string[];
  readonly headers?: Facts['headers'];
  readonly counters?: Facts['counters'];
  readonly message_size?: number;
  readonly header_size?: number;
}

const SESSION_KEYS = new Set([
  'local', 'remote', 'tls', 'auth', 'helo', 'mail_from', 'mail_params', 'rcpt_to', 'headers', 'counters', 'message_size', 'header_size',
]);
const EXPECT_KEYS = new Set(['decision', 'code', 'enhanced', 'reason', 'text']);
const DECISIONS = new Set(['continue', 'accept', 'reject', 'tempfail', 'discard', 'disconnect', 'not_reached']);

class Reader {
  readonly issues: ConfigIssue[] = [];
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
  ) {}

  lineOf(node: unknown): { line?: number; column?: number } {
    const range = (node as Node | undefined)?.range;
    if (range === undefined || range === null) return {};
    const pos = this.lines.linePos(range[0]);
    return { line: pos.line, column: pos.col };
  }

  issue(node: unknown, path: string, message: string, fix?: string): void {
    this.issues.push({ file: this.file, path, message, ...this.lineOf(node), ...(fix === undefined ? {} : { fix }) });
  }
}

function pathOf(base: string, key: string | number): string {
  return typeof key === 'number' ? `${base}[${key}]` : base === '' ? key : `${base}.${key}`;
}

function readExpectation(r: Reader, node: unknown, path: string): StageExpectation | undefined {
  if (!isMap(node)) {
    r.issue(node, path, 'must be a mapping like { decision: reject, code: 550 }');
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    const p = pathOf(path, key);
    if (!EXPECT_KEYS.has(key)) {
      r.issue(pair.key, p, `unknown key "${key}"`, `use one of ${[...EXPECT_KEYS].join(', ')}`);
    } else if (key === 'decision' && !DECISIONS.has(String(value))) {
      r.issue(pair.value, p, `unknown decision "${String(value)}"`, `use one of ${[...DECISIONS].join(', ')}`);
    } else if (key === 'code' && (typeof value !== 'number' || !Number.isInteger(value))) {
      r.issue(pair.value, p, 'code must be an integer like 550');
    } else if (key !== 'code' && typeof value !== 'string') {
      r.issue(pair.value, p, `${key} must be a string`);
    } else {
      out[key] = value;
    }
  }
  return out as StageExpectation;
}

function readCase(r: Reader, node: unknown, index: number, defaults: Record<string, unknown>): Scenario | undefined {
  const path = `cases[${index}]`;
  if (!isMap(node)) {
    r.issue(node, path, 'a case must be a mapping with name, session and expect');
    return undefined;
  }
  const before = r.issues.length;
  const name = node.get('name');
  if (typeof name !== 'string' || name === '') r.issue(node, pathOf(path, 'name'), 'every case needs a name');
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (!['name', 'session', 'expect'].includes(key)) r.issue(pair.key, pathOf(path, key), `unknown key "${key}"`, 'a case has name, session and expect');
  }
  const sessionNode = node.get('session', true);
  const session: Record<string, unknown> = { ...defaults };
  if (sessionNode !== undefined) {
    if (!isMap(sessionNode)) r.issue(sessionNode, pathOf(path, 'session'), 'session must be a mapping');
    else {
      for (const pair of sessionNode.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '';
        if (!SESSION_KEYS.has(key)) {
          r.issue(pair.key, pathOf(pathOf(path, 'session'), key), `unknown key "${key}"`, `use one of ${[...SESSION_KEYS].join(', ')}`);
        } else {
          session[key] = (pair.value as Node | null)?.toJSON() ?? null;
        }
      }
    }
  }
  for (const key of ['local', 'remote']) {
    if (typeof session[key] !== 'string') r.issue(sessionNode ?? node, pathOf(pathOf(path, 'session'), key), `session.${key} is required (a string like "192.0.2.10:25")`);
  }
  const rcptTo = session['rcpt_to'];
  if (rcptTo !== undefined && (!Array.isArray(rcptTo) || !rcptTo.every((x) => typeof x === 'string'))) {
    r.issue(sessionNode, pathOf(pathOf(path, 'session'), 'rcpt_to'), 'rcpt_to must be a list of addresses');
  }
  const expectNode = node.get('expect', true);
  const stages: Partial<Record<Stage, StageExpectation>> = {};
  const rcpt: Record<string, StageExpectation> = {};
  let connector: string | null | undefined;
  if (!isMap(expectNode)) {
    r.issue(expectNode ?? node, pathOf(path, 'expect'), 'every case needs an expect mapping');
  } else {
    for (const pair of expectNode.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      const p = pathOf(pathOf(path, 'expect'), key);
      if (key === 'connector') {
        const v = isScalar(pair.value) ? pair.value.value : undefined;
        if (typeof v === 'string' || v === null) connector = v;
        else r.issue(pair.value, p, 'connector must be a connector name (or null for "no connector")');
      } else if (key === 'rcpt') {
        if (!isMap(pair.value)) {
          r.issue(pair.value, p, 'rcpt maps each recipient, as written in rcpt_to, to its expectation');
          continue;
        }
        for (const rp of pair.value.items) {
          const addr = isScalar(rp.key) ? String(rp.key.value) : '';
          if (!Array.isArray(rcptTo) || !rcptTo.includes(addr)) {
            r.issue(rp.key, pathOf(p, addr), `"${addr}" is not in session.rcpt_to`, 'use the recipient exactly as written in rcpt_to');
          }
          const e = readExpectation(r, rp.value, pathOf(p, addr));
          if (e !== undefined) rcpt[addr] = e;
        }
      } else if ((STAGES as readonly string[]).includes(key)) {
        const e = readExpectation(r, pair.value, p);
        if (e !== undefined) stages[key as Stage] = e;
      } else {
        r.issue(pair.key, p, `unknown key "${key}"`, `use connector, rcpt or a stage: ${STAGES.join(', ')}`);
      }
    }
  }
  if (r.issues.length > before) return undefined;
  return {
    name: name as string,
    file: r.file,
    line: r.lineOf(node).line ?? 0,
    session: session as unknown as ScenarioSession,
    expect: { ...(connector === undefined ? {} : { connector }), stages, rcpt },
  };
}

/** Parse a scenario file; every problem is reported with file, line and key path. */
export function parseScenarios(text: string, file: string): Scenario[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const r = new Reader(file, doc, lines);
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    r.issues.push({ file, path: '', message: e.message.split('\n')[0] ?? 'YAML error', line: pos.line, column: pos.col });
  }
  if (r.issues.length > 0) throw new ConfigError(r.issues);
  const root = doc.contents;
  if (!isMap(root) || !isSeq(root.get('cases', true))) {
    r.issue(root, '', 'a scenario file is a mapping with a `cases:` list', 'see README, "Scenario files"');
    throw new ConfigError(r.issues);
  }
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (key !== 'cases' && key !== 'defaults') r.issue(pair.key, key, `unknown key "${key}"`, 'a scenario file has `defaults:` (optional) and `cases:`');
  }
  const defaultsNode = root.get('defaults', true);
  let defaults: Record<string, unknown> = {};
  if (defaultsNode !== undefined) {
    const s = isMap(defaultsNode) ? defaultsNode.get('session', true) : undefined;
    if (!isMap(defaultsNode) || !isMap(s) || defaultsNode.items.length !== 1) {
      r.issue(defaultsNode, 'defaults', 'defaults holds one key, `session:`, merged under every case\'s session');
    } else {
      defaults = s.toJSON() as Record<string, unknown>;
    }
  }
  const cases = root.get('cases', true);
  const out: Scenario[] = [];
  if (isSeq(cases)) {
    cases.items.forEach((item, i) => {
      const c = readCase(r, item, i, defaults);
      if (c !== undefined) out.push(c);
    });
  }
  if (r.issues.length > 0) throw new ConfigError(r.issues);
  return out;
}

export async function loadScenarios(file: string): Promise<Scenario[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ file, path: '', message: `cannot read scenario file (${(e as NodeJS.ErrnoException).code ?? String(e)})` }]);
  }
  return parseScenarios(text, file);
}

// --- running ------------------------------------------------------------------------------------

/** Every decision the session produced, and where it ended. */
export interface ScenarioRun {
  readonly decisions: Partial<Record<Exclude<Stage, 'rcpt'>, Decision>>;
  readonly rcpt: Readonly<Record<string, Decision>>;
  readonly connector: string | null;
}

const ends = (d: Decision): boolean => d.decision !== 'continue';

/**
 * Drive one session through the engine in SMTP order. A refused CONNECT or EHLO, a refused
 * MAIL, or no accepted recipient ends the transaction; a refused AUTH leaves the session
 * anonymous (as SMTP does) unless it disconnects.
 */
export function runScenario(engine: Engine, s: ScenarioSession): ScenarioRun {
  const decisions: Partial<Record<Exclude<Stage, 'rcpt'>, Decision>> = {};
  const rcpt: Record<string, Decision> = {};
  const base = { local: s.local, remote: s.remote, ...(s.tls === undefined ? {} : { tls: s.tls }), ...(s.counters === undefined ? {} : { counters: s.counters }) };
  let facts: Facts = base;
  const connect = (decisions.connect = engine.decide('connect', facts));
  const result = (): ScenarioRun => ({ decisions, rcpt, connector: connect.connector });
  if (ends(connect)) return result();
  if (s.helo !== undefined) facts = { ...facts, helo: s.helo };
  const ehlo = (decisions.ehlo = engine.decide('ehlo', facts));
  if (ends(ehlo)) return result();
  if (s.auth !== undefined && s.auth !== null) {
    const auth = (decisions.auth = engine.decide('auth', { ...facts, auth: s.auth }));
    if (auth.decision === 'disconnect') return result();
    if (auth.decision === 'continue') facts = { ...facts, auth: { mechanism: s.auth.mechanism, user: s.auth.user, result: 'success' } };
  }
  if (s.mail_from === undefined) return result();
  facts = { ...facts, mail_from: s.mail_from, ...(s.mail_params === undefined ? {} : { mail_params: s.mail_params }) };
  const mail = (decisions.mail = engine.decide('mail', facts));
  if (ends(mail)) return result();
  let accepted = 0;
  for (const to of s.rcpt_to ?? []) {
    const d = (rcpt[to] = engine.decide('rcpt', { ...facts, rcpt_to: to, accepted_rcpt_count: accepted }));
    if (d.decision === 'disconnect') return result();
    if (d.decision === 'continue') accepted++;
  }
  if (accepted === 0) return result();
  facts = {
    ...facts,
    accepted_rcpt_count: accepted,
    headers: s.headers ?? {},
    ...(s.header_size === undefined ? {} : { header_size: s.header_size }),
    message_size: s.message_size ?? 0,
  };
  const headers = (decisions.headers = engine.decide('headers', facts));
  if (ends(headers)) return result();
  decisions.eom = engine.decide('eom', facts);
  return result();
}

function compare(label: string, want: StageExpectation, got: Decision | undefined): string[] {
  if (got === undefined) {
    return want.decision === 'not_reached' ? [] : [`${label}: expected ${want.decision ?? 'a decision'}, but the session never reached it`];
  }
  const diffs: string[] = [];
  const actual = `got ${got.decision} ${formatReply(got)} (reason ${got.reason})`;
  if (want.decision !== undefined && want.decision !== got.decision) diffs.push(`${label}: expected ${want.decision}, ${actual}`);
  else if (want.code !== undefined && want.code !== got.reply.code) diffs.push(`${label}: expected code ${want.code}, ${actual}`);
  else if (want.enhanced !== undefined && want.enhanced !== got.reply.enhanced) diffs.push(`${label}: expected enhanced ${want.enhanced}, ${actual}`);
  else if (want.reason !== undefined && want.reason !== got.reason) diffs.push(`${label}: expected reason ${want.reason}, ${actual}`);
  else if (want.text !== undefined && want.text !== got.reply.text) diffs.push(`${label}: expected text "${want.text}", ${actual}`);
  if (got.error !== undefined) diffs.push(`${label}: engine error ${got.error.code}: ${got.error.message}`);
  return diffs;
}

/** The differences between what a scenario expects and what the policy decided (empty = pass). */
export function checkScenario(engine: Engine, scenario: Scenario): string[] {
  const run = runScenario(engine, scenario.session);
  const diffs: string[] = [];
  if (scenario.expect.connector !== undefined && scenario.expect.connector !== run.connector) {
    diffs.push(`connector: expected ${JSON.stringify(scenario.expect.connector)}, got ${JSON.stringify(run.connector)}`);
  }
  for (const stage of STAGES) {
    if (stage === 'rcpt') {
      for (const [addr, want] of Object.entries(scenario.expect.rcpt)) diffs.push(...compare(`rcpt ${addr}`, want, run.rcpt[addr]));
    } else {
      const want = scenario.expect.stages[stage];
      if (want !== undefined) diffs.push(...compare(stage, want, run.decisions[stage]));
    }
  }
  return diffs;
}
