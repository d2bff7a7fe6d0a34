/**
 * Review findings on the Session's sequencing and counter contract (engine/session.ts), each
 * driven through the real policy.wasm.
 */
import { describe, expect, it } from 'vitest';
import { MemoryCounters, type ConnectionCounts, type ConnectionKey, type Counters } from '../../engine/counters.js';
import { CLIENT, INBOUND, engineFor, opened } from './helpers.js';

/** MemoryCounters with hooks: a gate on openConnection, and a failing recordMessage. */
class TestCounters implements Counters {
  readonly inner = new MemoryCounters();
  gate: Promise<void> | null = null;
  failRecord = false;
  async openConnection(key: ConnectionKey): Promise<ConnectionCounts> {
    if (this.gate !== null) await this.gate;
    return this.inner.openConnection(key);
  }
  closeConnection(key: ConnectionKey): void {
    this.inner.closeConnection(key);
  }
  messagesLastMinute(rateKey: string): number {
    return this.inner.messagesLastMinute(rateKey);
  }
  recordMessage(rateKey: string): void {
    if (this.failRecord) throw new Error('store down');
    this.inner.recordMessage(rateKey);
  }
}

describe('Session sequencing', () => {
  /*
   * A second connect() answers `disconnect` (engine_error_connect, ENGINE_SESSION_SEQUENCE),
   * but `sequence()` never applies the decision's effect, so the session stays open and the
   * next stages continue. session.ts: "After a `disconnect` decision every call is refused".
   * Expected: once a disconnect decision has been returned, every later call is refused.
   */
  it('refuses every call after it answered disconnect (second CONNECT)', async () => {
    const engine = await engineFor();
    const s = engine.session(INBOUND);
    expect((await s.connect()).decision).toBe('continue');
    const again = await s.connect();
    expect(again.decision).toBe('disconnect');
    const ehlo = await s.helo('client.example.test');
    expect(ehlo.error?.code, `after a disconnect decision EHLO got ${ehlo.decision} ${ehlo.reason}`).toBe('ENGINE_SESSION_SEQUENCE');
    await s.close();
  });

  /*
   * auth() refuses AUTH during a transaction (RFC 4954 §4), but mtaAuthenticated() has no
   * sequence rule at all: called after MAIL it switches the open transaction's principals, so
   * the RCPT decisions use rights (here Accept-Any-Recipient) that MAIL FROM was never decided
   * under, and the rate keys chosen at MAIL stay the anonymous client's. It also silently
   * replaces a login mta-policy itself verified.
   * Expected: an MTA AUTH during a transaction is refused (or takes effect only for the next
   * transaction); RCPT in this transaction is still decided as anonymous.
   */
  it('does not let an MTA-reported AUTH change the principals of an open transaction', async () => {
    const engine = await engineFor(`
server: { fqdn: mx.northwind.test }
accepted_domains: [{ domain: northwind.test }]
identities: { users: [{ name: nancy, addresses: [nancy@northwind.test] }] }
connectors:
  - name: Mixed
    usage: custom
    bindings: ["0.0.0.0:25"]
    remote_ip_ranges: ["0.0.0.0/0"]
    permission_groups: [AnonymousUsers, ExchangeUsers]
    auth_mechanisms: [Tls, BasicAuth]
`);
    const s = await opened(engine, INBOUND);
    expect((await s.mail('<nancy@northwind.test>')).decision).toBe('continue');
    expect((await s.rcpt('<x@example.test>')).reason).toBe('relay_denied'); // anonymous: the control
    s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'nancy' });
    const r = await s.rcpt('<y@example.test>');
    expect(r.decision, `RCPT in the anonymous transaction got ${r.decision} as ${r.principals.join(',')}`).not.toBe('continue');
    await s.close();
  });
});

describe('Session and the Counters interface', () => {
  /*
   * The Counters interface is async-capable (for a shared store). If the connection closes
   * while CONNECT is still waiting for openConnection (a client that connects and drops at
   * once), close() finds no connection key yet and releases nothing; when openConnection then
   * resolves, connect() stores the key and the count is never released. Each such connection
   * leaks one count of connections_total and connections_from_source for good, until
   * max_inbound_connection_per_source refuses that client (and max_inbound_connection
   * everyone).
   * Expected: a close() during connect() releases the count once openConnection resolves.
   */
  it('does not leak a connection count when close() comes while connect() is pending', async () => {
    const counters = new TestCounters();
    const engine = await engineFor(undefined, { counters });
    let open!: () => void;
    counters.gate = new Promise((resolve) => (open = resolve));
    const s = engine.session(INBOUND);
    const pending = s.connect();
    await s.close();
    open();
    await pending;
    counters.gate = null;
    // A fresh connection from the same client must be the only one open.
    const next = await counters.openConnection({ connector: 'Internet', source: '198.51.100.7' });
    expect(next).toEqual({ total: 1, fromSource: 1 });
  });

  /*
   * session.ts: "Methods never throw … a counter store that fails … never an accept". But
   * messageAccepted() awaits counters.recordMessage() unguarded, so a failing store makes it
   * reject — after the message was already delivered — and an adapter that awaits it in its
   * end-of-message path gets an exception there (close() guards the same call).
   * Expected: messageAccepted() resolves (the failure is logged), never rejects.
   */
  it('messageAccepted() does not reject when the store fails', async () => {
    const counters = new TestCounters();
    const engine = await engineFor(undefined, { counters });
    const s = await opened(engine, CLIENT);
    expect((await s.auth({ mechanism: 'PLAIN', user: 'nancy' })).decision).toBe('continue');
    expect((await s.mail('<nancy@northwind.test>')).decision).toBe('continue');
    expect((await s.rcpt('<x@example.test>')).decision).toBe('continue');
    expect((await s.headers([['From', 'nancy@northwind.test']])).decision).toBe('continue');
    expect((await s.eom(1000)).decision).toBe('accept');
    counters.failRecord = true;
    await expect(s.messageAccepted()).resolves.toBeUndefined();
    await s.close();
  });
});
