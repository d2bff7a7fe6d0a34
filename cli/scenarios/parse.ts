import { Issues } from '../../engine/config/issues.js';
import { readTextFile, readYaml, toPlain, type YNode, type YPair } from '../../engine/config/yaml.js';
import { ConfigError } from '../../engine/errors.js';
import { DECISION_KINDS, type AuthFacts, type DecisionKind, type Facts, type HeaderFacts } from '../../engine/types.js';

/**
 * Scenario files (README, "Scenario files"): SMTP sessions and what the policy must decide at
 * each stage. Strict: every key anywhere is checked, a case must assert something, and every
 * problem is reported with file, line and key path.
 */

export type Expected = DecisionKind | 'not_reached';

export interface StageExpectation {
  readonly decision?: Expected;
  readonly code?: number;
  readonly enhanced?: string;
  readonly reason?: string;
  readonly text?: string;
  /** The engine error code the decision must carry (an engine failure is otherwise a failure of the case). */
  readonly error?: string;
}

export interface ScenarioTransaction {
  readonly mail_from: string;
  readonly mail_params?: Facts['mail_params'];
  readonly rcpt_to: readonly string[];
  readonly headers?: HeaderFacts;
  readonly header_size?: number;
  readonly message_size?: number;
  /** RSET after the recipients instead of DATA. */
  readonly rset?: boolean;
}

export interface ScenarioSession {
  readonly local: string;
  readonly remote: string;
  readonly tls?: Facts['tls'];
  readonly helo?: string;
  /** AUTH attempts in order; the first that continues or disconnects ends them. */
  readonly auth: readonly AuthFacts[];
  readonly counters?: Facts['counters'];
  readonly transactions: readonly ScenarioTransaction[];
}

export interface TransactionExpectation {
  readonly mail?: StageExpectation;
  readonly rcpt: Readonly<Record<string, StageExpectation>>;
  readonly headers?: StageExpectation;
  readonly eom?: StageExpectation;
}

export interface Scenario {
  readonly name: string;
  readonly file: string;
  readonly line: number;
  readonly session: ScenarioSession;
  readonly expect: {
    readonly connector?: string | null;
    readonly connect?: StageExpectation;
    readonly ehlo?: StageExpectation;
    /** One expectation per AUTH attempt (a single mapping is the last attempt's). */
    readonly auth?: readonly StageExpectation[] | StageExpectation;
    readonly transactions: readonly TransactionExpectation[];
  };
}

const EXPECT_KEYS = ['decision', 'code', 'enhanced', 'reason', 'text', 'error'];
const DECISIONS = [...DECISION_KINDS, 'not_reached'];
const SESSION_KEYS = ['local', 'remote', 'tls', 'auth', 'helo', 'counters', 'transactions'];
const MESSAGE_KEYS = ['mail_from', 'mail_params', 'rcpt_to', 'headers', 'message_size', 'header_size'];
const TX_KEYS = [...MESSAGE_KEYS, 'rset'];
const TLS_KEYS = ['version', 'cipher', 'client_cert'];
const CERT_KEYS = ['verified', 'subject', 'issuer', 'san_dns'];
const AUTH_KEYS = ['mechanism', 'user', 'result', 'by_mta'];
const COUNTER_KEYS = ['logon_failures', 'connections_from_source', 'connections_total', 'messages_last_minute'];
const STAGE_EXPECT_KEYS = ['connector', 'connect', 'ehlo', 'auth', 'mail', 'rcpt', 'headers', 'eom', 'transactions'];
const TX_EXPECT_KEYS = ['mail', 'rcpt', 'headers', 'eom'];

type Json = Record<string, unknown>;

const isMap = (n: unknown): n is Extract<YNode, { kind: 'map' }> => (n as YNode | undefined)?.kind === 'map';
const isSeq = (n: unknown): n is Extract<YNode, { kind: 'seq' }> => (n as YNode | undefined)?.kind === 'seq';
const isScalar = (n: unknown): n is Extract<YNode, { kind: 'scalar' }> => (n as YNode | undefined)?.kind === 'scalar';

/** Issues against the positioned YAML nodes (engine/config/yaml.ts, the reader the configuration uses). */
class Reader {
  constructor(
    readonly file: string,
    readonly issues: Issues,
    private readonly position: (offset: number) => { readonly line: number; readonly column: number },
  ) {}

  lineOf(node: unknown): { line?: number } {
    const offset = (node as YNode | undefined)?.offset;
    return offset === undefined ? {} : { line: this.position(offset).line };
  }

  issue(node: unknown, path: string, message: string, fix?: string): void {
    this.issues.add({ path: [], pathText: path, offset: (node as YNode | YPair | undefined) === undefined ? undefined : offsetOf(node) }, message, fix);
  }

  /** A mapping whose keys must all be in `allowed`; returns its pairs (empty when not a mapping). */
  mapping(node: unknown, path: string, allowed: readonly string[], what: string): YPair[] {
    if (!isMap(node)) {
      this.issue(node, path, `${what} must be a mapping`);
      return [];
    }
    const out: YPair[] = [];
    for (const pair of node.pairs) {
      if (!allowed.includes(pair.key)) this.issue(pair, join(path, pair.key), `unknown key "${pair.key}"`, `use one of ${allowed.join(', ')}`);
      else out.push(pair);
    }
    return out;
  }
}

function offsetOf(node: unknown): number | undefined {
  const n = node as { keyOffset?: number; offset?: number };
  return n.keyOffset ?? n.offset;
}

function join(base: string, key: string | number): string {
  return typeof key === 'number' ? `${base}[${key}]` : base === '' ? key : `${base}.${key}`;
}

const keyOf = (pair: YPair): string => pair.key;
const toJs = (node: YNode): unknown => toPlain(node);
const isNull = (n: YNode): boolean => isScalar(n) && n.value === null;

const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The type of one message key (session level or in a transaction); reports what is wrong. */
function checkMessageKey(r: Reader, key: string, v: YNode, p: string): void {
  const value = isScalar(v) ? v.value : undefined;
  if (key === 'mail_from' && typeof value !== 'string') r.issue(v, p, 'mail_from must be a string like "<a@example.test>" ("<>" for the null sender)');
  else if (key === 'rcpt_to' && !(isSeq(v) && v.items.every((x) => isScalar(x) && typeof x.value === 'string'))) r.issue(v, p, 'rcpt_to must be a list of addresses');
  else if (key === 'mail_params' && !isMap(v)) r.issue(v, p, 'mail_params must be a mapping like { SIZE: 1000 }');
  else if (key === 'headers' && !isMap(v) && !isSeq(v)) r.issue(v, p, 'headers must be a mapping or a list of [name, value] pairs');
  else if ((key === 'header_size' || key === 'message_size') && !isCount(value)) r.issue(v, p, `${key} must be a byte count (a non-negative integer)`);
  else if (key === 'rset' && typeof value !== 'boolean') r.issue(v, p, 'rset must be true or false');
}

/** Check a session mapping (defaults or a case) and return it as plain data. */
function readSession(r: Reader, node: unknown, path: string): Json {
  const out: Json = {};
  for (const pair of r.mapping(node, path, [...SESSION_KEYS, ...MESSAGE_KEYS], 'session')) {
    const key = keyOf(pair);
    const p = join(path, key);
    const v = pair.value;
    if (key === 'tls' && !isNull(v)) {
      for (const t of r.mapping(v, p, TLS_KEYS, 'tls')) {
        if (keyOf(t) === 'client_cert' && !isNull(t.value)) r.mapping(t.value, join(p, 'client_cert'), CERT_KEYS, 'client_cert');
      }
    } else if (key === 'auth') {
      const items = isSeq(v) ? v.items : [v];
      items.forEach((a, i) => r.mapping(a, isSeq(v) ? join(p, i) : p, AUTH_KEYS, 'an AUTH attempt'));
    } else if (key === 'counters') {
      r.mapping(v, p, COUNTER_KEYS, 'counters');
    } else if (key === 'transactions') {
      if (!isSeq(v)) r.issue(v, p, 'transactions must be a list of {mail_from, rcpt_to, …}');
      else v.items.forEach((t, i) => r.mapping(t, join(p, i), TX_KEYS, 'a transaction').forEach((tp) => checkMessageKey(r, keyOf(tp), tp.value, join(join(p, i), keyOf(tp)))));
    } else if ((key === 'local' || key === 'remote' || key === 'helo') && !(isScalar(v) && typeof v.value === 'string')) {
      r.issue(v, p, key === 'helo' ? 'helo must be a string (the EHLO argument; "" for none)' : `${key} must be a string like "192.0.2.10:25"`);
    } else if ((MESSAGE_KEYS as readonly string[]).includes(key)) {
      checkMessageKey(r, key, v, p);
    }
    out[key] = toJs(v);
  }
  return out;
}

function readExpectation(r: Reader, node: unknown, path: string): StageExpectation | undefined {
  const pairs = r.mapping(node, path, EXPECT_KEYS, 'an expectation like { decision: reject, code: 550 }');
  if (isMap(node) && node.pairs.length === 0) {
    r.issue(node, path, 'this expectation asserts nothing', `give at least one of ${EXPECT_KEYS.join(', ')}`);
    return undefined;
  }
  const out: Json = {};
  for (const pair of pairs) {
    const key = keyOf(pair);
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    const p = join(path, key);
    if (key === 'decision' && !DECISIONS.includes(String(value))) {
      r.issue(pair.value, p, `unknown decision "${String(value)}"`, `use one of ${DECISIONS.join(', ')}`);
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

function readRcptExpectations(r: Reader, node: unknown, path: string, rcptTo: readonly string[], where = 'rcpt_to'): Record<string, StageExpectation> {
  const out: Record<string, StageExpectation> = {};
  if (!isMap(node)) {
    r.issue(node, path, 'rcpt maps each recipient, as written in rcpt_to, to its expectation');
    return out;
  }
  if (node.pairs.length === 0) r.issue(node, path, 'this expectation asserts nothing', 'map at least one recipient to an expectation');
  for (const rp of node.pairs) {
    const addr = keyOf(rp);
    if (!rcptTo.includes(addr)) r.issue(rp, join(path, addr), `"${addr}" is not in ${where}`, `use the recipient exactly as written in ${where}`);
    const e = readExpectation(r, rp.value, join(path, addr));
    if (e !== undefined) out[addr] = e;
  }
  return out;
}

function readTxExpectation(r: Reader, node: unknown, path: string, tx: ScenarioTransaction | undefined): TransactionExpectation {
  const out: { mail?: StageExpectation; rcpt: Record<string, StageExpectation>; headers?: StageExpectation; eom?: StageExpectation } = { rcpt: {} };
  if (isMap(node) && node.pairs.length === 0) r.issue(node, path, 'this transaction expectation asserts nothing', `give at least one of ${TX_EXPECT_KEYS.join(', ')}`);
  for (const pair of r.mapping(node, path, TX_EXPECT_KEYS, 'a transaction expectation')) {
    const key = keyOf(pair) as 'mail' | 'rcpt' | 'headers' | 'eom';
    if (key === 'rcpt') out.rcpt = readRcptExpectations(r, pair.value, join(path, key), tx?.rcpt_to ?? [], "this transaction's rcpt_to");
    else {
      const e = readExpectation(r, pair.value, join(path, key));
      if (e !== undefined) out[key] = e;
    }
  }
  return out;
}

/** The session's transactions: `transactions:` (session-level message keys are their defaults), or the one the message keys describe. */
function transactions(s: Json): ScenarioTransaction[] {
  const defaults: Json = {};
  for (const k of MESSAGE_KEYS) if (s[k] !== undefined) defaults[k] = s[k];
  const list = Array.isArray(s['transactions']) ? (s['transactions'] as Json[]) : s['mail_from'] === undefined ? [] : [{}];
  return list.map((t) => ({ rcpt_to: [], ...defaults, ...t }) as unknown as ScenarioTransaction);
}

function readCase(r: Reader, node: unknown, index: number, defaults: Json): Scenario | undefined {
  const path = `cases[${index}]`;
  const before = r.issues.list.length;
  const pairs = r.mapping(node, path, ['name', 'session', 'expect'], 'a case (name, session, expect)');
  const get = (k: string): unknown => pairs.find((p) => keyOf(p) === k)?.value;
  const nameNode = get('name');
  const name = isScalar(nameNode) ? nameNode.value : undefined;
  if (typeof name !== 'string' || name === '') r.issue(nameNode ?? node, join(path, 'name'), 'every case needs a name');
  const s: Json = { ...defaults, ...(get('session') === undefined ? {} : readSession(r, get('session'), join(path, 'session'))) };
  for (const key of ['local', 'remote']) {
    // A value of the wrong type is reported where it is written.
    if (s[key] === undefined) r.issue(get('session') ?? node, join(path, `session.${key}`), `session.${key} is required (a string like "192.0.2.10:25")`);
  }
  const txs = transactions(s);
  txs.forEach((t, i) => {
    if (t.mail_from === undefined) r.issue(get('session'), join(path, `session.transactions[${i}].mail_from`), 'every transaction needs mail_from');
  });
  const auth = s['auth'] === undefined || s['auth'] === null ? [] : Array.isArray(s['auth']) ? (s['auth'] as AuthFacts[]) : [s['auth'] as AuthFacts];
  const expectNode = get('expect');
  const expect: { connector?: string | null; connect?: StageExpectation; ehlo?: StageExpectation; auth?: StageExpectation | StageExpectation[]; transactions: TransactionExpectation[] } = { transactions: [] };
  if (expectNode === undefined) r.issue(node, join(path, 'expect'), 'every case needs an expect mapping');
  const ep = join(path, 'expect');
  const expectPairs = r.mapping(expectNode, ep, STAGE_EXPECT_KEYS, 'expect');
  if (isMap(expectNode) && expectNode.pairs.length === 0) r.issue(expectNode, ep, 'this case asserts nothing', 'expect at least one stage or the connector');
  const shorthand: Record<string, YNode> = {};
  for (const pair of expectPairs) {
    const key = keyOf(pair);
    const p = join(ep, key);
    if (key === 'connector') {
      const v = isScalar(pair.value) ? pair.value.value : undefined;
      if (typeof v === 'string' || v === null) expect.connector = v;
      else r.issue(pair.value, p, 'connector must be a connector name (or null for "no connector")');
    } else if (key === 'auth' && isSeq(pair.value)) {
      expect.auth = pair.value.items.map((x, i) => readExpectation(r, x, join(p, i)) ?? {});
      if (pair.value.items.length === 0) r.issue(pair.value, p, 'this expectation asserts nothing', 'give one expectation per AUTH attempt');
      else if (pair.value.items.length !== auth.length) r.issue(pair.value, p, `${pair.value.items.length} expectations for ${auth.length} AUTH attempts`);
    } else if (key === 'transactions') {
      if (!isSeq(pair.value)) r.issue(pair.value, p, 'transactions must be a list, one entry per session transaction');
      else {
        if (pair.value.items.length !== txs.length) r.issue(pair.value, p, `${pair.value.items.length} expectations for ${txs.length} transactions`);
        expect.transactions = pair.value.items.map((x, i) => readTxExpectation(r, x, join(p, i), txs[i]));
      }
    } else if (key === 'connect' || key === 'ehlo' || key === 'auth') {
      const e = readExpectation(r, pair.value, p);
      if (e !== undefined) expect[key] = e;
    } else {
      shorthand[key] = pair.value;
    }
  }
  if (Object.keys(shorthand).length > 0) {
    if (Array.isArray(s['transactions'])) r.issue(expectNode, ep, 'with session.transactions, expect mail/rcpt/headers/eom under expect.transactions');
    else if (expect.transactions.length > 0) r.issue(expectNode, ep, 'give expect.transactions or expect.mail/rcpt/headers/eom, not both');
    else {
      const tx: { mail?: StageExpectation; rcpt: Record<string, StageExpectation>; headers?: StageExpectation; eom?: StageExpectation } = { rcpt: {} };
      for (const key of ['mail', 'headers', 'eom'] as const) {
        if (shorthand[key] !== undefined) {
          const e = readExpectation(r, shorthand[key], join(ep, key));
          if (e !== undefined) tx[key] = e;
        }
      }
      if (shorthand['rcpt'] !== undefined) tx.rcpt = readRcptExpectations(r, shorthand['rcpt'], join(ep, 'rcpt'), txs[0]?.rcpt_to ?? [], 'session.rcpt_to');
      expect.transactions = [tx];
    }
  }
  // Each part refuses its own empty expectation; a case whose parts add up to nothing (say
  // `transactions: []` for a session without one) is refused too.
  const asserts =
    expect.connector !== undefined ||
    expect.connect !== undefined ||
    expect.ehlo !== undefined ||
    (Array.isArray(expect.auth) ? expect.auth.length > 0 : expect.auth !== undefined) ||
    expect.transactions.some((t) => t.mail !== undefined || t.headers !== undefined || t.eom !== undefined || Object.keys(t.rcpt).length > 0);
  if (r.issues.list.length === before && !asserts) r.issue(expectNode ?? node, ep, 'this case asserts nothing', 'expect at least one stage or the connector');
  if (r.issues.list.length > before) return undefined;
  return {
    name: name as string,
    file: r.file,
    line: r.lineOf(node).line ?? 0,
    session: {
      local: s['local'] as string,
      remote: s['remote'] as string,
      ...(s['tls'] === undefined ? {} : { tls: s['tls'] as Facts['tls'] }),
      ...(s['helo'] === undefined ? {} : { helo: s['helo'] as string }),
      ...(s['counters'] === undefined ? {} : { counters: s['counters'] as Facts['counters'] }),
      auth,
      transactions: txs,
    },
    expect,
  };
}

/** Parse a scenario file; every problem is reported with file, line and key path. */
export function parseScenarios(text: string, file: string): Scenario[] {
  const doc = readYaml(text, file);
  const issues = new Issues(file, doc.position);
  issues.list.push(...doc.issues);
  if (doc.root === null || doc.issues.length > 0) throw issues.error();
  const r = new Reader(file, issues, doc.position);
  const root = doc.root;
  const pairs = r.mapping(root, '', ['defaults', 'cases'], 'a scenario file (defaults, cases)');
  const casesNode = pairs.find((p) => keyOf(p) === 'cases')?.value;
  if (!isSeq(casesNode)) {
    r.issue(root, 'cases', 'a scenario file is a mapping with a `cases:` list', 'see README, "Scenario files"');
    throw issues.error();
  }
  const defaultsNode = pairs.find((p) => keyOf(p) === 'defaults')?.value;
  let defaults: Json = {};
  if (defaultsNode !== undefined) {
    const d = r.mapping(defaultsNode, 'defaults', ['session'], 'defaults (one key, session:)');
    const s = d.find((p) => keyOf(p) === 'session')?.value;
    if (s !== undefined) defaults = readSession(r, s, 'defaults.session');
  }
  const out: Scenario[] = [];
  casesNode.items.forEach((item, i) => {
    const c = readCase(r, item, i, defaults);
    if (c !== undefined) out.push(c);
  });
  if (out.length === 0 && issues.list.length === 0) r.issue(casesNode, 'cases', 'the file has no cases');
  if (issues.list.length > 0) throw issues.error();
  return out;
}

export async function loadScenarios(file: string): Promise<Scenario[]> {
  await Promise.resolve();
  return parseScenarios(readTextFile(file, 'the scenario file'), file);
}
