/** The connector selection conflict check: overlapping remote ranges on the same binding. */
import type { Binding, ConnectorConfig, IpRange } from './types.js';
import { code, excerpt, type Issues } from './issues.js';

interface BuiltConnector {
  readonly index: number;
  readonly config: ConnectorConfig;
}

// ---------------------------------------------------------------------------------------------
// Connector selection conflicts (Exchange refuses these at configuration time)
// ---------------------------------------------------------------------------------------------

interface SweepItem {
  readonly conn: BuiltConnector;
  readonly rangeIndex: number;
  readonly range: IpRange;
  readonly binding: Binding;
  /** 0 = specific-IP group, 1 = wildcard group (cross sweeps only). */
  readonly side: 0 | 1;
}

const MAX_CONFLICT_REPORTS = 100;

function compareItems(a: SweepItem, b: SweepItem): number {
  if (a.range.first !== b.range.first) return a.range.first < b.range.first ? -1 : 1;
  if (a.range.last !== b.range.last) return a.range.last > b.range.last ? -1 : 1;
  return a.conn.index - b.conn.index;
}

/** First index in `active` (sorted by range.last ascending) whose last ≥ `v`. */
function lowerBound(active: readonly SweepItem[], v: bigint): number {
  let lo = 0;
  let hi = active.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const m = active[mid];
    if (m !== undefined && m.range.last < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

type ConflictKind = 'equal' | 'partial';

class ConflictReporter {
  private readonly seen = new Set<string>();
  private count = 0;
  private truncated = false;

  constructor(private readonly issues: Issues) {}

  private get full(): boolean {
    return this.count >= MAX_CONFLICT_REPORTS;
  }

  /** Records a conflict; returns false once the report is full (callers stop enumerating). */
  report(a: SweepItem, b: SweepItem, kind: ConflictKind): boolean {
    if (a.conn.index === b.conn.index) return true;
    const [x, y] = a.conn.index < b.conn.index ? [a, b] : [b, a];
    const key = `${x.conn.index}:${x.rangeIndex}|${y.conn.index}:${y.rangeIndex}`;
    if (this.seen.has(key)) return !this.full;
    if (this.full) {
      this.truncated = true;
      return false;
    }
    this.seen.add(key);
    this.count++;
    const [ctx, cx, cy] = [this.issues, x.conn.config, y.conn.config];
    const how = kind === 'equal' ? 'are equal' : 'partially overlap';
    const on = x.binding.text === y.binding.text ? `both listen on ${x.binding.text}` : `listen on ${x.binding.text} and ${y.binding.text}`;
    const message =
      `connectors ${code(cx.name)} (${ctx.where(cx.source)}) and ${code(cy.name)} (${ctx.where(cy.source)}) ${on}, ` +
      `and their remote ranges ${excerpt(x.range.text)} (${ctx.where(x.range.source)}) and ${excerpt(y.range.text)} (${ctx.where(y.range.source)}) ${how}: ` +
      'a client in the overlap would match both';
    ctx.addAt(y.range.source, message, 'make one range contain the other, split the range, or bind one connector to a specific local IP');
    return !this.full;
  }

  finish(): void {
    if (!this.truncated) return;
    const message = `there are more connector range conflicts than the ${MAX_CONFLICT_REPORTS} listed`;
    this.issues.addAt({ file: this.issues.file, path: 'connectors' }, message, 'fix the conflicts above and check again');
  }
}

/** Equal and partial overlaps among items on the same binding. `items` sorted by compareItems. */
function sweepSame(items: readonly SweepItem[], rep: ConflictReporter): void {
  let active: SweepItem[] = [];
  const equal = new Map<string, SweepItem>();
  for (const q of items) {
    const lo = lowerBound(active, q.range.first);
    if (lo > 0) active = active.slice(lo);
    const hi = lowerBound(active, q.range.last);
    // Every s in active[0, hi): s.first < q.first ≤ s.last < q.last — a partial overlap.
    for (let k = 0; k < hi; k++) {
      const s = active[k];
      if (s !== undefined && !rep.report(s, q, 'partial')) break;
    }
    const key = `${q.range.first}-${q.range.last}`;
    const e = equal.get(key);
    if (e === undefined) equal.set(key, q);
    else rep.report(e, q, 'equal');
    active.splice(hi, 0, q);
  }
}

/** Partial overlaps between a specific-IP binding's items (side 0) and the wildcard's (side 1). */
function sweepCross(items: readonly SweepItem[], rep: ConflictReporter): void {
  const active: [SweepItem[], SweepItem[]] = [[], []];
  for (const q of items) {
    const other = active[q.side === 0 ? 1 : 0];
    const lo = lowerBound(other, q.range.first);
    if (lo > 0) other.splice(0, lo);
    const hi = lowerBound(other, q.range.last);
    for (let k = 0; k < hi; k++) {
      const s = other[k];
      if (s !== undefined && !rep.report(s, q, 'partial')) break;
    }
    const own = active[q.side];
    own.splice(lowerBound(own, q.range.last), 0, q);
  }
}

/** Reports connectors whose remote ranges are equal or partially overlap on a shared binding. */
export function checkConflicts(issues: Issues, configs: readonly ConnectorConfig[]): void {
  const connectors = configs.map((config, index) => ({ index, config }));
  // (port, family) → local ip or '*' → items.
  const groups = new Map<string, Map<string, SweepItem[]>>();
  for (const conn of connectors) {
    if (!conn.config.enabled) continue;
    for (const binding of conn.config.bindings) {
      const pf = `${binding.port}/${binding.family}`;
      let byIp = groups.get(pf);
      if (byIp === undefined) groups.set(pf, (byIp = new Map()));
      let list = byIp.get(binding.ip ?? '*');
      if (list === undefined) byIp.set(binding.ip ?? '*', (list = []));
      conn.config.remoteIpRanges.forEach((range, rangeIndex) => {
        if (range.family === binding.family) list.push({ conn, rangeIndex, range, binding, side: binding.ip === null ? 1 : 0 });
      });
    }
  }
  const rep = new ConflictReporter(issues);
  for (const byIp of groups.values()) {
    // Ranges of one connector never conflict with each other: a group with one connector is clean.
    const owners = new Set<number>();
    for (const list of byIp.values()) for (const item of list) owners.add(item.conn.index);
    if (owners.size < 2) continue;
    for (const list of byIp.values()) list.sort(compareItems);
    for (const list of byIp.values()) sweepSame(list, rep);
    const wildcard = byIp.get('*');
    if (wildcard === undefined || wildcard.length === 0) continue;
    for (const [ip, list] of byIp) {
      if (ip !== '*') sweepCross([...list, ...wildcard].sort(compareItems), rep);
    }
  }
  rep.finish();
}
