import type { Engine } from '../../engine/engine.js';
import { MemoryCounters, type ConnectionCounts, type ConnectionKey, type Counters } from '../../engine/counters.js';
import type { Decision } from '../../engine/types.js';
import { formatReply } from '../explain.js';
import type { Scenario, ScenarioSession, StageExpectation } from './parse.js';

/**
 * Running a scenario: one engine Session per case, driven in SMTP order exactly as an adapter
 * drives it (the session model decides what carries between stages).
 */

/** What the session decided, per stage. */
export interface ScenarioRun {
  readonly connector: string | null;
  readonly connect?: Decision;
  readonly ehlo?: Decision;
  readonly auth: readonly Decision[];
  readonly transactions: readonly TransactionRun[];
}

export interface TransactionRun {
  readonly mail?: Decision;
  readonly rcpt: Readonly<Record<string, Decision>>;
  readonly headers?: Decision;
  readonly eom?: Decision;
}

/**
 * A scenario's `counters` describe activity besides this session: connections from the same
 * client and on the connector (the values include this connection), and messages in the last
 * minute. They are added to what the session itself counts.
 */
class SeededCounters implements Counters {
  private readonly inner = new MemoryCounters();
  constructor(private readonly seed: NonNullable<ScenarioSession['counters']>) {}
  openConnection(key: ConnectionKey): ConnectionCounts {
    const c = this.inner.openConnection(key);
    return {
      total: c.total + Math.max(0, (this.seed.connections_total ?? 1) - 1),
      fromSource: c.fromSource + Math.max(0, (this.seed.connections_from_source ?? 1) - 1),
    };
  }
  closeConnection(key: ConnectionKey): void {
    this.inner.closeConnection(key);
  }
  messagesLastMinute(rateKey: string): number {
    return this.inner.messagesLastMinute(rateKey) + (this.seed.messages_last_minute ?? 0);
  }
  recordMessage(rateKey: string): void {
    this.inner.recordMessage(rateKey);
  }
}

const ends = (d: Decision): boolean => d.decision !== 'continue';
/** A transaction goes on after `continue`, and after `discard` (the client was told 2xx; the message is dropped). */
const stops = (d: Decision): boolean => d.decision !== 'continue' && d.decision !== 'discard';

/** Drive one session through the engine. */
export async function runScenario(engine: Engine, s: ScenarioSession): Promise<ScenarioRun> {
  const counters = new SeededCounters(s.counters ?? {});
  const session = engine.session(
    { local: s.local, remote: s.remote, ...(s.tls === undefined ? {} : { tls: s.tls }) },
    { counters, logonFailures: s.counters?.logon_failures ?? 0 },
  );
  const auth: Decision[] = [];
  const transactions: TransactionRun[] = [];
  const run: { connect?: Decision; ehlo?: Decision } = {};
  const result = (): ScenarioRun => ({ connector: session.connector, ...run, auth, transactions });
  try {
    run.connect = await session.connect();
    if (ends(run.connect)) return result();
    run.ehlo = await session.helo(s.helo ?? '');
    if (ends(run.ehlo)) return result();
    for (const attempt of s.auth) {
      // AUTH the MTA ran (milter mode): no AUTH decision; the policy judges it at MAIL.
      if (attempt.by_mta === true) {
        session.mtaAuthenticated(attempt);
        break;
      }
      const d = await session.auth(attempt);
      auth.push(d);
      if (d.decision === 'disconnect') return result();
      if (d.decision === 'continue') break;
    }
    for (const t of s.transactions) {
      const tx: { mail?: Decision; rcpt: Record<string, Decision>; headers?: Decision; eom?: Decision } = { rcpt: {} };
      transactions.push(tx);
      tx.mail = await session.mail(t.mail_from, t.mail_params);
      if (tx.mail.decision === 'disconnect') return result();
      if (stops(tx.mail)) continue;
      for (const to of t.rcpt_to) {
        const d = (tx.rcpt[to] = await session.rcpt(to));
        if (d.decision === 'disconnect') return result();
      }
      if (t.rset === true || session.acceptedRecipients === 0) {
        session.rset();
        continue;
      }
      tx.headers = await session.headers(t.headers ?? {}, t.header_size);
      if (tx.headers.decision === 'disconnect') return result();
      if (stops(tx.headers)) continue;
      // A scenario without message_size describes a message with an empty body.
      const size = t.message_size ?? (t.header_size ?? headerBytes(t.headers ?? {}));
      tx.eom = await session.eom(size);
      if (tx.eom.decision === 'accept') await session.messageAccepted();
      if (tx.eom.decision === 'disconnect') return result();
    }
    return result();
  } finally {
    await session.close();
  }
}

/** The header block size the engine derives for these headers ("Name: value\r\n" each, then CRLF). */
function headerBytes(headers: NonNullable<ScenarioSession['transactions'][number]['headers']>): number {
  const pairs: readonly (readonly [string, string])[] = Array.isArray(headers)
    ? (headers as readonly (readonly [string, string])[])
    : Object.entries(headers as Record<string, string | readonly string[]>).flatMap(([n, v]) => (Array.isArray(v) ? v.map((x: string) => [n, x] as const) : [[n, v as string] as const]));
  return pairs.reduce((n, [name, value]) => n + Buffer.byteLength(name) + Buffer.byteLength(value) + 4, 2);
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
  if (want.error !== undefined && want.error !== got.error?.code) diffs.push(`${label}: expected engine error ${want.error}, got ${got.error?.code ?? 'none'}`);
  return diffs;
}

/** Every decision of a run with its label, in order. */
function decisions(run: ScenarioRun): [string, Decision][] {
  const out: [string, Decision][] = [];
  if (run.connect !== undefined) out.push(['connect', run.connect]);
  if (run.ehlo !== undefined) out.push(['ehlo', run.ehlo]);
  run.auth.forEach((d, i) => out.push([run.auth.length > 1 ? `auth[${i}]` : 'auth', d]));
  run.transactions.forEach((t, i) => {
    const p = run.transactions.length > 1 ? `transactions[${i}].` : '';
    if (t.mail !== undefined) out.push([`${p}mail`, t.mail]);
    for (const [addr, d] of Object.entries(t.rcpt)) out.push([`${p}rcpt ${addr}`, d]);
    if (t.headers !== undefined) out.push([`${p}headers`, t.headers]);
    if (t.eom !== undefined) out.push([`${p}eom`, t.eom]);
  });
  return out;
}

/** The differences between what a scenario expects and what the policy decided (empty = pass). */
export async function checkScenario(engine: Engine, scenario: Scenario): Promise<string[]> {
  const run = await runScenario(engine, scenario.session);
  const e = scenario.expect;
  const diffs: string[] = [];
  const expected = new Map<Decision | undefined, StageExpectation>();
  const check = (label: string, want: StageExpectation | undefined, got: Decision | undefined): void => {
    if (want === undefined) return;
    expected.set(got, want);
    diffs.push(...compare(label, want, got));
  };
  if (e.connector !== undefined && e.connector !== run.connector) {
    diffs.push(`connector: expected ${JSON.stringify(e.connector)}, got ${JSON.stringify(run.connector)}`);
  }
  check('connect', e.connect, run.connect);
  check('ehlo', e.ehlo, run.ehlo);
  if (Array.isArray(e.auth)) e.auth.forEach((want, i) => check(`auth[${i}]`, want, run.auth[i]));
  else check('auth', e.auth as StageExpectation | undefined, run.auth.at(-1));
  e.transactions.forEach((want, i) => {
    const got = run.transactions[i];
    const p = e.transactions.length > 1 ? `transactions[${i}].` : '';
    check(`${p}mail`, want.mail, got?.mail);
    for (const [addr, w] of Object.entries(want.rcpt)) check(`${p}rcpt ${addr}`, w, got?.rcpt[addr]);
    check(`${p}headers`, want.headers, got?.headers);
    check(`${p}eom`, want.eom, got?.eom);
  });
  // An engine failure anywhere fails the case unless that stage expects that error.
  for (const [label, d] of decisions(run)) {
    if (d.error !== undefined && expected.get(d)?.error !== d.error.code) diffs.push(`${label}: engine error ${d.error.code}: ${d.error.message}`);
  }
  return diffs;
}
