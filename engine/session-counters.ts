import type { ConnectionCounts, ConnectionKey, Counters } from './counters.js';
import type { CompiledConnector } from './data.js';
import type { SessionDoc } from './decision.js';

/**
 * A session's use of the Counters store (engine/counters.ts): the connection count it holds,
 * the message-rate keys of a transaction, and the message waiting to be counted. A store that
 * fails before a decision fails that decision (the session turns it into a tempfail); one that
 * fails after the fact (a release, a delivered message) is reported to `fault`, never thrown.
 */
export class SessionCounting {
  private held: ConnectionKey | null = null;
  private pending: readonly string[] | null = null;
  private released = false;

  constructor(
    private readonly store: Counters,
    private readonly fault: (what: string, e: unknown) => void,
  ) {}

  /**
   * Count the connection as open. When the session was released while the store answered (a
   * close() during CONNECT found nothing to release), the count is released at once and null
   * returned.
   */
  async open(key: ConnectionKey): Promise<ConnectionCounts | null> {
    const counts = await this.store.openConnection(key);
    if (this.released) {
      await this.release(key);
      return null;
    }
    this.held = key;
    return counts;
  }

  /** The connection closed: release its count (once). */
  async close(): Promise<void> {
    this.released = true;
    const key = this.held;
    this.held = null;
    if (key !== null) await this.release(key);
  }

  /** The most messages any of the keys had in the last minute. */
  async lastMinute(keys: readonly string[]): Promise<number> {
    let last = 0;
    for (const key of keys) last = Math.max(last, await this.store.messagesLastMinute(key));
    return last;
  }

  /** End of message accepted a message under these keys (null: nothing to count). */
  awaitDelivery(keys: readonly string[] | null): void {
    this.pending = keys;
  }

  /** The accepted message was delivered: count it. Returns whether there was one. */
  async delivered(): Promise<boolean> {
    const keys = this.pending;
    this.pending = null;
    if (keys === null) return false;
    try {
      for (const key of keys) await this.store.recordMessage(key);
    } catch (e) {
      // The message is already delivered: a store that fails loses one count, never the message.
      this.fault('counter store failed to record a message', e);
    }
    return true;
  }

  private async release(key: ConnectionKey): Promise<void> {
    try {
      await this.store.closeConnection(key);
    } catch (e) {
      // A store that fails here leaves a stale count; it must not fail the close.
      this.fault('counter store failed to release a connection', e);
    }
  }
}

/**
 * The rate keys of a message on this connector, per its message_rate_source (Exchange
 * MessageRateSource): User counts per authenticated user — her identity, whichever login name
 * she used; a login without one is itself; an anonymous client, or an AUTH the policy does not
 * accept, is its address — IPAddress per client address, All both.
 */
export function rateKeys(conn: CompiledConnector | undefined, clientIp: string, doc: SessionDoc): string[] {
  if (conn === undefined || conn.message_rate_limit === null) return [];
  const byIp = `${conn.name}\0ip:${clientIp}`;
  const user = !doc.authenticated ? null : doc.identity !== null ? `identity:${doc.identity}` : doc.login === null ? null : `login:${doc.login}`;
  const byUser = user === null ? byIp : `${conn.name}\0${user}`;
  if (conn.message_rate_source === 'ip_address') return [byIp];
  if (conn.message_rate_source === 'all') return byUser === byIp ? [byIp] : [byUser, byIp];
  return [byUser];
}
