/**
 * Limits and lifecycle of the submission listener over real sockets: the message rate limit
 * counted in the session model, connection limits, idle timeout, and graceful shutdown (stop
 * accepting, let the transaction in flight finish, 421 to the rest).
 */
import net from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { message, RawClient, startListener, USERS, type Fixture } from './listener-fixture.js';

const started: Fixture[] = [];
afterEach(async () => {
  for (const f of started.splice(0)) await f.stop();
});
async function fixture(o: Partial<Parameters<typeof startListener>[0]> = {}): Promise<Fixture> {
  const fx = await startListener({ nextHop: 'maildir:mail', ...o });
  started.push(fx);
  return fx;
}
const delivered = (fx: Fixture, id: string): number => {
  const dir = join(fx.dir, 'mail', 'new');
  return existsSync(dir) ? readdirSync(dir).filter((f) => readFileSync(join(dir, f), 'utf8').includes(`Message-ID: <${id}>`)).length : 0;
};

async function submitter(fx: Fixture, user: 'nancy' | 'bob' = 'nancy'): Promise<RawClient> {
  const { c } = await RawClient.connect(fx.ports.client);
  await c.cmd('EHLO client.test');
  await c.starttls(fx.ca);
  await c.cmd('EHLO client.test');
  expect((await c.authPlain(user, USERS[user])).code).toBe(235);
  return c;
}

async function sendOne(c: RawClient, id: string, from = 'nancy@example.test'): Promise<number> {
  const m = await c.cmd(`MAIL FROM:<${from}>`);
  if (m.code !== 250) return m.code;
  expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
  return (await c.data(message({ from, to: 'bob@example.test', id }))).code;
}

describe('message rate limit (per user, counted after the next hop accepted)', () => {
  it('the third message in a minute is refused with the policy reply, for that user only', async () => {
    const fx = await fixture({ client: 'message_rate_limit: 2' });
    const c = await submitter(fx);
    expect(await sendOne(c, 'rate-1@test')).toBe(250);
    expect(await sendOne(c, 'rate-2@test')).toBe(250);
    const third = await c.cmd('MAIL FROM:<nancy@example.test>');
    expect(third).toMatchObject({ code: 450, text: '4.7.1 Error: too much mail from this client, try again later' });
    c.destroy();
    // A new connection does not reset it; another user is not affected.
    const again = await submitter(fx);
    expect((await again.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(450);
    again.destroy();
    const bob = await submitter(fx, 'bob');
    expect(await sendOne(bob, 'rate-bob@test', 'bob@example.test')).toBe(250);
    bob.destroy();
    expect(delivered(fx, 'rate-1@test') + delivered(fx, 'rate-2@test') + delivered(fx, 'rate-bob@test')).toBe(3);
  });
});

describe('connections', () => {
  it('over maxConnections the client gets 421 and is closed', async () => {
    const fx = await fixture({ listener: { maxConnections: 2 } });
    const a = await RawClient.connect(fx.ports.client);
    const b = await RawClient.connect(fx.ports.client);
    const s = net.connect({ port: fx.ports.client, host: '127.0.0.1' });
    const text = await new Promise<string>((res) => {
      let buf = '';
      s.on('data', (d: Buffer) => (buf += d.toString()));
      s.on('close', () => res(buf));
    });
    expect(text).toMatch(/^421 4\.3\.2 mail\.test Too many connected clients/);
    a.c.destroy();
    b.c.destroy();
  });

  it('an idle client is closed with 421 after the idle timeout', async () => {
    const fx = await fixture({ listener: { idleTimeoutMs: 300 } });
    const { c } = await RawClient.connect(fx.ports.client);
    expect(await c.read()).toMatchObject({ code: 421 });
    await c.closed;
  });

  it('the session time limit closes even a busy client with 421 4.4.2', async () => {
    const fx = await fixture({ listener: { sessionTimeoutMs: 400 } });
    const { c } = await RawClient.connect(fx.ports.client);
    for (let i = 0; i < 3; i++) {
      expect((await c.cmd('NOOP')).code).toBe(250);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await c.read()).toMatchObject({ code: 421, text: '4.4.2 Error: session time limit exceeded' });
    await c.closed;
  });
});

describe('graceful shutdown', () => {
  it('stops accepting, 421 to idle clients, lets the transaction in flight finish, then 421', async () => {
    const fx = await fixture();
    const idle = await submitter(fx);
    const busy = await submitter(fx);
    expect((await busy.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await busy.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    const closing = fx.listener.close(5_000);
    expect(await idle.read()).toMatchObject({ code: 421, text: '4.3.2 Service shutting down, closing transmission channel' });
    await idle.closed;
    await expect(RawClient.connect(fx.ports.client)).rejects.toThrow();
    expect((await busy.data(message({ from: 'nancy@example.test', to: 'bob@example.test', id: 'drain-1@test' }))).code).toBe(250);
    expect((await busy.read()).code).toBe(421);
    await closing;
    expect(delivered(fx, 'drain-1@test')).toBe(1);
  });

  it('at the deadline a transaction still open gets 421 and nothing of it is delivered', async () => {
    const fx = await fixture();
    const c = await submitter(fx);
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write('Message-ID: <late-1@test>\r\nFrom: <nancy@example.test>\r\n\r\nhalf a message\r\n');
    const t0 = Date.now();
    await fx.listener.close(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect((await c.read()).code).toBe(421);
    expect(delivered(fx, 'late-1@test')).toBe(0);
  });
});
