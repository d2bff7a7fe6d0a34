/**
 * The counters a session needs: concurrent connections per connector (in total and per client
 * address) and messages accepted in the last minute per rate key. Behind an interface so that a
 * shared store (Redis, for several instances) can replace the in-memory default without
 * touching adapters: every method may return a promise.
 *
 * Logon failures are not here: Exchange's MaxLogonFailures counts per connection, so the
 * session keeps them itself.
 */

/** A connection as the counters key it. */
export interface ConnectionKey {
  readonly connector: string;
  /** The client's canonical IP. */
  readonly source: string;
}

export interface ConnectionCounts {
  /** Open connections on the connector, this one included. */
  readonly total: number;
  /** Open connections from this source on the connector, this one included. */
  readonly fromSource: number;
}

type MaybePromise<T> = T | Promise<T>;

export interface Counters {
  /** Count a connection as open and return the counts including it. */
  openConnection(key: ConnectionKey): MaybePromise<ConnectionCounts>;
  /** The connection closed (called once for every openConnection). */
  closeConnection(key: ConnectionKey): MaybePromise<void>;
  /** Messages accepted under `rateKey` in the last 60 seconds. */
  messagesLastMinute(rateKey: string): MaybePromise<number>;
  /** A message under `rateKey` was accepted (the next hop or MTA took it). */
  recordMessage(rateKey: string): MaybePromise<void>;
}

/** The rate window: Exchange's MessageRateLimit is per minute. */
export const RATE_WINDOW_MS = 60_000;

interface Options {
  /** Clock in ms (tests inject one). */
  readonly now?: () => number;
  /** Bound on distinct rate keys kept; the stalest are dropped first. */
  readonly maxRateKeys?: number;
  /** Bound on timestamps kept per rate key (no limit needs more than this many). */
  readonly maxPerKey?: number;
}

/** In-process counters: correct for one process; bounded in memory. */
export class MemoryCounters implements Counters {
  private readonly connections = new Map<string, number>();
  private readonly rates = new Map<string, number[]>();
  private readonly now: () => number;
  private readonly maxRateKeys: number;
  private readonly maxPerKey: number;

  constructor(options: Options = {}) {
    this.now = options.now ?? Date.now;
    this.maxRateKeys = options.maxRateKeys ?? 100_000;
    this.maxPerKey = options.maxPerKey ?? 10_000;
  }

  openConnection(key: ConnectionKey): ConnectionCounts {
    const total = this.bump(`c\0${key.connector}`, 1);
    const fromSource = this.bump(`s\0${key.connector}\0${key.source}`, 1);
    return { total, fromSource };
  }

  closeConnection(key: ConnectionKey): void {
    this.bump(`c\0${key.connector}`, -1);
    this.bump(`s\0${key.connector}\0${key.source}`, -1);
  }

  messagesLastMinute(rateKey: string): number {
    const list = this.rates.get(rateKey);
    if (list === undefined) return 0;
    this.trim(list);
    return list.length;
  }

  recordMessage(rateKey: string): void {
    let list = this.rates.get(rateKey);
    if (list === undefined) {
      if (this.rates.size >= this.maxRateKeys) this.evict();
      list = [];
      this.rates.set(rateKey, list);
    } else {
      // Re-insert: Map order is then least-recently-used first.
      this.rates.delete(rateKey);
      this.rates.set(rateKey, list);
    }
    this.trim(list);
    list.push(this.now());
    if (list.length > this.maxPerKey) list.splice(0, list.length - this.maxPerKey);
  }

  private bump(key: string, delta: number): number {
    const n = Math.max(0, (this.connections.get(key) ?? 0) + delta);
    if (n === 0) this.connections.delete(key);
    else this.connections.set(key, n);
    return n;
  }

  private trim(list: number[]): void {
    const cutoff = this.now() - RATE_WINDOW_MS;
    let i = 0;
    while (i < list.length && (list[i] ?? 0) <= cutoff) i++;
    if (i > 0) list.splice(0, i);
  }

  private evict(): void {
    const drop = Math.max(1, Math.floor(this.maxRateKeys / 10));
    let n = 0;
    for (const key of this.rates.keys()) {
      if (n++ >= drop) break;
      this.rates.delete(key);
    }
  }
}
