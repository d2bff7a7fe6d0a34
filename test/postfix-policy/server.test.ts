import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PolicyServer, type PolicyServerOptions } from '../../adapters/postfix-policy/server.js';
import { formatListen, type ListenAddress } from '../../adapters/shared/listen.js';
import { Engine } from '../../engine/engine.js';
import { CAPTURES, INTERNET_IP, PolicyClient, capturedRequests, countersWithRate, northwindOnLoopback, recordingLogger, request, unreachableCounters, type LogLine } from './helpers.js';

const CAPTURED = { smtp: [40103], submission: [40493] };
const LOCAL: ListenAddress = { transport: 'inet', host: '127.0.0.1', family: 4, port: 0 };

let engine: Engine;
/** An engine whose rate counter answers only when `release()` is called (for requests in flight). */
let slow: Engine;
let releases: Array<() => void> = [];
let dir: string;
const servers: PolicyServer[] = [];
const clients: PolicyClient[] = [];

beforeAll(async () => {
  engine = await Engine.create({ config: northwindOnLoopback(CAPTURED) });
  const held = countersWithRate(() => new Promise<number>((resolve) => releases.push(() => resolve(0))));
  slow = await Engine.create({ config: northwindOnLoopback(CAPTURED), counters: held });
  dir = mkdtempSync(join(tmpdir(), 'policy-server-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of releases.splice(0)) r();
  await Promise.all(servers.splice(0).map((s) => s.close(500)));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function start(over: Partial<PolicyServerOptions> = {}, lines: LogLine[] = []): Promise<PolicyServer> {
  const s = await PolicyServer.start({ listen: LOCAL, engine, logger: recordingLogger(lines), ...over });
  servers.push(s);
  return s;
}
async function client(s: PolicyServer, localAddress?: string): Promise<PolicyClient> {
  const c = await PolicyClient.open(s.address, localAddress);
  clients.push(c);
  return c;
}
const sasl = (): ReadonlyMap<string, string> => capturedRequests('sasl').find((q) => q.get('protocol_state') === 'RCPT') as ReadonlyMap<string, string>;

describe.each([
  ['inet 127.0.0.1:0', (): ListenAddress => LOCAL],
  ['unix socket', (): ListenAddress => ({ transport: 'unix', path: join(dir, `p${Date.now()}.sock`) })],
])('PolicyServer over %s', (_name, address) => {
  it('answers every captured session on one connection, in order', async () => {
    const s = await start({ listen: address() });
    const c = await client(s);
    const actions: string[] = [];
    for (const name of CAPTURES) for (const r of capturedRequests(name)) actions.push(await c.ask(r));
    // The RCPT requests of the captures: 1 + 3 + 0 + 1 + 1 + 1 + 1.
    expect(actions.filter((a) => a === 'OK')).toHaveLength(8);
    expect(actions.every((a) => a === 'OK' || a === 'DUNNO')).toBe(true);
  });

  it('answers pipelined requests in order', async () => {
    const s = await start({ listen: address() });
    const c = await client(s);
    const relay = request('RCPT', { client_address: INTERNET_IP });
    const bytes = [request('RCPT'), relay, request('MAIL'), request('RCPT')].map((r) => [...r].map(([k, v]) => `${k}=${v}\n`).join('') + '\n').join('');
    c.send(bytes);
    expect([await c.next(), await c.next(), await c.next(), await c.next()]).toEqual(['OK', '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain', 'DUNNO', 'OK']);
  });

  it('serves concurrent clients, each its own answers', async () => {
    const s = await start({ listen: address() });
    const cs = await Promise.all(Array.from({ length: 20 }, () => client(s)));
    const results = await Promise.all(cs.map(async (c, i) => {
      const got: string[] = [];
      for (let n = 0; n < 10; n++) got.push(await c.ask(request('RCPT', (i + n) % 2 === 0 ? {} : { client_address: INTERNET_IP })));
      return got.every((a, n) => a === ((i + n) % 2 === 0 ? 'OK' : '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain'));
    }));
    expect(results).toEqual(cs.map(() => true));
    expect(s.connections).toBe(20);
  });

  it('closes a connection that sends garbage, and only that one', async () => {
    const lines: LogLine[] = [];
    const s = await start({ listen: address() }, lines);
    const good = await client(s);
    const bad = await client(s);
    expect(await bad.ask(request('RCPT'))).toBe('OK');
    bad.send('this is not a policy request\n\n');
    await bad.closed();
    expect(await good.ask(request('RCPT'))).toBe('OK');
    expect(lines.some((l) => l.level === 'warn' && l.obj['code'] === 'POLICY_ATTRIBUTE_MALFORMED')).toBe(true);
  });
});

describe('PolicyServer timeouts, limits and failures', () => {
  it('drops a connection silent for longer than the idle timeout', async () => {
    const s = await start({ idleTimeoutMs: 100 });
    const c = await client(s);
    expect(await c.ask(request('RCPT'))).toBe('OK');
    await c.closed();
    for (let i = 0; i < 100 && s.connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(s.connections).toBe(0);
  });

  it('drops a half-sent request after the request timeout, even with a long idle timeout', async () => {
    const lines: LogLine[] = [];
    const s = await start({ idleTimeoutMs: 60_000, requestTimeoutMs: 100 }, lines);
    const c = await client(s);
    c.send('request=smtpd_access_policy\n');
    await c.closed();
    expect(lines.some((l) => l.obj['code'] === 'POLICY_TIMEOUT')).toBe(true);
  });

  it('closes a connection whose request exceeds the bounds', async () => {
    const s = await start({ limits: { maxLineBytes: 128 } });
    const c = await client(s);
    c.send(`recipient=${'x'.repeat(200)}`);
    await c.closed();
  });

  it('an engine failure is answered with a 4xx and the connection carries on', async () => {
    const failing = await Engine.create({ config: northwindOnLoopback(CAPTURED), counters: unreachableCounters() });
    const s = await start({ engine: failing });
    const c = await client(s);
    expect(await c.ask(sasl())).toBe('451 4.3.0 Temporary policy failure, try again later');
    // CONNECT reads no rate counter: decided as usual on the same connection.
    expect(await c.ask(request('CONNECT'))).toBe('DUNNO');
  });

  it('logs the answer with codes and ids, never an attribute value', async () => {
    const lines: LogLine[] = [];
    const s = await start({}, lines);
    const c = await client(s);
    await c.ask(sasl());
    await c.ask(request('RCPT', { server_port: '0' }));
    const text = JSON.stringify(lines);
    expect(lines.some((l) => l.msg === 'policy answer' && l.obj['answer'] === 'permit' && l.obj['state'] === 'RCPT')).toBe(true);
    expect(lines.some((l) => l.level === 'error' && (l.obj['err'] as { code?: string } | undefined)?.code === 'POLICY_ENDPOINT_MISSING')).toBe(true);
    for (const secret of ['nancy', 'bob@example.org', '127.0.0.80']) expect(text).not.toContain(secret);
  });

  it('refuses to start on a port in use, a malformed address, a live unix socket or another file; replaces a stale socket', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    await expect(start({ listen: `inet:${port}@127.0.0.1` })).rejects.toMatchObject({ code: 'POLICY_LISTEN_FAILED', message: expect.stringContaining(`inet:${port}@127.0.0.1`) });
    busy.close();
    await expect(start({ listen: 'tcp:10040@127.0.0.1' })).rejects.toMatchObject({ code: 'POLICY_LISTEN_FAILED', message: expect.stringContaining('inet:PORT@HOST') });
    const stale = join(dir, 'stale.sock');
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(stale).isSocket()).toBe(true);
    const s = await start({ listen: `unix:${stale}` });
    expect(statSync(stale).mode & 0o777).toBe(0o660);
    await expect(start({ listen: `unix:${stale}` })).rejects.toMatchObject({ code: 'POLICY_LISTEN_FAILED', message: expect.stringContaining('another process') });
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    await expect(start({ listen: `unix:${file}` })).rejects.toMatchObject({ code: 'POLICY_LISTEN_FAILED', message: expect.stringContaining('not a socket') });
    expect(s.postfixEndpoint).toBe(`unix:${stale}`);
  });

  it('takes the configuration\'s listen value and reports the check_policy_service endpoint', async () => {
    const lines: LogLine[] = [];
    const s = await start({ listen: { kind: 'inet', host: '127.0.0.1', port: 0 } }, lines);
    expect(s.address).toMatchObject({ transport: 'inet', host: '127.0.0.1' });
    expect(s.postfixEndpoint).toBe(`inet:127.0.0.1:${(s.address as { port: number }).port}`);
    expect(lines.some((l) => l.msg === 'postfix policy server listening' && l.obj['listen'] === formatListen(s.address) && l.obj['check_policy_service'] === s.postfixEndpoint)).toBe(true);
  });
});

describe('PolicyServer graceful close', () => {
  it('answers the request in flight, closes idle connections, refuses new ones, removes its socket', async () => {
    const path = join(dir, 'close.sock');
    const s = await start({ engine: slow, listen: `unix:${path}` });
    const busy = await client(s);
    const idle = await client(s);
    const answer = busy.ask(sasl());
    while (releases.length === 0) await new Promise((r) => setTimeout(r, 5));
    const closing = s.close(5_000);
    await idle.closed();
    await expect(PolicyClient.open(s.address)).rejects.toThrow();
    for (const r of releases.splice(0)) r();
    expect(await answer).toBe('OK');
    await busy.closed();
    await closing;
    expect(() => statSync(path)).toThrow();
  });

  it('destroys what is still open at the deadline', async () => {
    const lines: LogLine[] = [];
    const s = await start({ engine: slow }, lines);
    const c = await client(s);
    void c.ask(sasl()).catch(() => undefined);
    while (releases.length === 0) await new Promise((r) => setTimeout(r, 5));
    await s.close(100);
    await c.closed();
    expect(lines.some((l) => l.msg === 'policy close deadline reached; dropping open connections' && l.obj['connections'] === 1)).toBe(true);
    expect(s.close()).toBe(s.close());
  });
});
