/**
 * The Session's sequencing and counter contract (engine/session.ts) on the real policy.wasm:
 * nothing continues after a disconnect, an MTA-reported AUTH cannot change an open transaction,
 * an async counter store neither leaks counts nor throws into the adapter, the per-user message
 * rate is per user (not per login name), and a refused call logs its own duration.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../engine/config/load.js';
import { MemoryCounters, type ConnectionCounts, type ConnectionKey, type Counters } from '../engine/counters.js';
import { Engine, type EngineLogger } from '../engine/engine.js';
import type { Session } from '../engine/session.js';
import { fixtureConfig } from './helpers/engine.js';

/** Submission on 587 (one message per minute per user), inbound on 25. */
const YAML = `
server: { fqdn: mx.northwind.test, local_addresses: [192.0.2.10] }
accepted_domains: [{ domain: northwind.test, type: authoritative }]
identities:
  unlisted_logins: reject
  users:
    - { name: nancy, addresses: [nancy@northwind.test], logins: ["NORTHWIND\\\\nancy"] }
    - { name: andrew, addresses: [andrew@northwind.test] }
connectors:
  - { name: Client, usage: client, message_rate_limit: 1 }
  - { name: Internet, usage: internet, bindings: ["0.0.0.0:25"] }
`;
const CLIENT = { local: '192.0.2.10:587', remote: '198.51.100.7', tls: { version: 'TLSv1.3' } } as const;
const INBOUND = { local: '192.0.2.10:25', remote: '198.51.100.7' } as const;

function engineFor(yaml = YAML, options: { counters?: Counters; logger?: EngineLogger } = {}): Promise<Engine> {
  return Engine.create({ config: parseConfig(yaml, 'rules.yaml'), ...options });
}

async function opened(engine: Engine, init: Parameters<Engine['session']>[0] = CLIENT): Promise<Session> {
  const s = engine.session(init);
  expect((await s.connect()).decision).toBe('continue');
  expect((await s.helo('client.example.test')).decision).toBe('continue');
  return s;
}

/** One message; the end-of-message outcome, or the first stage that did not continue. */
async function sendOne(s: Session, from: string, to: string): Promise<string> {
  const m = await s.mail(from);
  if (m.decision !== 'continue') return `mail:${m.decision}:${m.reason}`;
  const r = await s.rcpt(to);
  if (r.decision !== 'continue') return `rcpt:${r.decision}:${r.reason}`;
  const h = await s.headers([['From', from.replace(/^<|>$/g, '')]]);
  if (h.decision !== 'continue') return `headers:${h.decision}:${h.reason}`;
  const e = await s.eom(1000);
  if (e.decision === 'accept') await s.messageAccepted();
  return `eom:${e.decision}:${e.reason}`;
}

/** MemoryCounters with a gate on openConnection and a switch that makes recordMessage fail. */
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

function collect(): { lines: { level: string; obj: Record<string, unknown>; msg?: string }[]; logger: EngineLogger } {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, ...(msg === undefined ? {} : { msg }) });
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

describe('Session sequencing', () => {
  it('refuses every call after it answered disconnect (a second CONNECT)', async () => {
    const s = (await engineFor()).session(INBOUND);
    expect((await s.connect()).decision).toBe('continue');
    expect(await s.connect()).toMatchObject({ decision: 'disconnect', error: { code: 'ENGINE_SESSION_SEQUENCE' } });
    expect((await s.helo('client.example.test')).error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    expect((await s.mail('<a@example.test>')).error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    await s.close();
  });

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
    expect((await s.rcpt('<x@example.test>')).reason).toBe('relay_denied');
    expect(s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'nancy' })).toBe(false);
    expect(s.user).toBeNull();
    expect(await s.rcpt('<y@example.test>')).toMatchObject({ reason: 'relay_denied', principals: ['anonymous'] });
    // Between transactions it counts, and reporting it again (every MAIL, every request) is a no-op.
    s.rset();
    expect(s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'nancy' })).toBe(true);
    expect(s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'nancy' })).toBe(true);
    expect((await s.mail('<nancy@northwind.test>')).decision).toBe('continue');
    expect((await s.rcpt('<y@example.test>')).decision).toBe('continue');
    // Another login is a second AUTH (RFC 4954 §4): refused, nancy stays.
    s.rset();
    expect(s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'mallory' })).toBe(false);
    expect(s.user).toBe('nancy');
    await s.close();
  });

  it('an MTA AUTH never replaces an AUTH mta-policy verified', async () => {
    const s = await opened(await engineFor());
    expect((await s.auth({ mechanism: 'PLAIN', user: 'nancy' })).decision).toBe('continue');
    expect(s.mtaAuthenticated({ mechanism: 'PLAIN', user: 'andrew' })).toBe(false);
    expect(s.user).toBe('nancy');
    await s.close();
  });
});

describe('Session and the Counters interface', () => {
  it('does not leak a connection count when close() comes while connect() is pending', async () => {
    const counters = new TestCounters();
    const engine = await engineFor(undefined, { counters });
    let open!: () => void;
    counters.gate = new Promise((resolve) => (open = resolve));
    const s = engine.session(INBOUND);
    const pending = s.connect();
    await s.close();
    open();
    expect((await pending).error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    counters.gate = null;
    // A fresh connection from the same client is the only one open.
    expect(await counters.openConnection({ connector: 'Internet', source: '198.51.100.7' })).toEqual({ total: 1, fromSource: 1 });
  });

  it('messageAccepted() resolves when the store fails, and the failure is logged', async () => {
    const counters = new TestCounters();
    const { lines, logger } = collect();
    const s = await opened(await engineFor(undefined, { counters, logger }));
    expect((await s.auth({ mechanism: 'PLAIN', user: 'nancy' })).decision).toBe('continue');
    expect((await s.mail('<nancy@northwind.test>')).decision).toBe('continue');
    expect((await s.rcpt('<x@example.test>')).decision).toBe('continue');
    expect((await s.headers([['From', 'nancy@northwind.test']])).decision).toBe('continue');
    expect((await s.eom(1000)).decision).toBe('accept');
    counters.failRecord = true;
    await expect(s.messageAccepted()).resolves.toBeUndefined();
    expect(lines.at(-1)).toMatchObject({ level: 'error', obj: { err: { message: 'store down' } } });
    await s.close();
  });
});

describe('message rate per user', () => {
  it('holds one user to the limit whichever login name she uses', async () => {
    const engine = await engineFor(); // Client: message_rate_limit 1 per minute, source user
    const first = await opened(engine);
    expect((await first.auth({ mechanism: 'PLAIN', user: 'nancy' })).decision).toBe('continue');
    expect(await sendOne(first, '<nancy@northwind.test>', '<x@example.test>')).toBe('eom:accept:ok_eom');
    await first.close();
    for (const login of ['NANCY', 'NORTHWIND\\nancy', 'nancy@northwind.test']) {
      const s = await opened(engine);
      expect((await s.auth({ mechanism: 'PLAIN', user: login })).principals, login).toContain('user:nancy');
      expect((await s.mail('<nancy@northwind.test>')).reason, `login ${login}`).toBe('rate_limit');
      await s.close();
    }
    // Another user has her own bucket.
    const andrew = await opened(engine);
    expect((await andrew.auth({ mechanism: 'PLAIN', user: 'andrew' })).decision).toBe('continue');
    expect((await andrew.mail('<andrew@northwind.test>')).decision).toBe('continue');
    await andrew.close();
  });
});

describe('decision log durations', () => {
  it('logs the duration of a call refused out of sequence, not the process uptime', async () => {
    const { lines, logger } = collect();
    const engine = await Engine.create({ config: fixtureConfig(), logger });
    const s = engine.session({ local: '192.0.2.99:25', remote: '198.51.100.7' });
    const before = performance.now();
    const d = await s.rcpt('<u@contoso.test>'); // before CONNECT
    const elapsed = performance.now() - before;
    expect(d.error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    const line = lines.find((l) => l.obj['decision'] === d.id);
    expect(line?.obj['ms'] as number).toBeLessThanOrEqual(elapsed + 1);
  });
});
