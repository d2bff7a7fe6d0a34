/**
 * The submission listener in front of real next hops — Postfix's smtp-sink (with its fault
 * injection) and a private Postfix — over 127.0.0.1: the client hears 250 only after the next
 * hop accepted, refusals and failures are mirrored as 4xx/5xx, and over a bounded run with the
 * next hop flapping every message the client saw acknowledged arrived (counted by Message-ID).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { message, RawClient, startListener, USERS, type Fixture } from '../submission/listener-fixture.js';
import { PeerStack, smtpSink, startPostfix, type SmtpSink } from './harness.js';
import { describePeers } from './skip.js';

const peers = new PeerStack();
afterEach(() => peers.stopAll());

const FAST_HOP = { commandTimeoutMs: 1_500, dataTimeoutMs: 1_500, connectTimeoutMs: 1_500, tls: { starttls: 'never' as const } };

async function listenerTo(hop: string, extra: Parameters<typeof startListener>[0]['listener'] = {}): Promise<Fixture> {
  // No per-user message rate limit (the client usage default is 5 a minute): these tests count messages.
  const fx = await startListener({ nextHop: hop, client: 'message_rate_limit: unlimited', listener: { nextHop: FAST_HOP, ...extra } });
  peers.add(fx);
  return fx;
}

async function sink(args: readonly string[] = [], port?: number): Promise<SmtpSink> {
  return peers.add(await smtpSink({ args, ...(port === undefined ? {} : { port }) }));
}

const dumps = (dir: string | undefined): string[] => {
  if (dir === undefined) throw new Error('smtp-sink was started without capture');
  return readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8'));
};

/** An authenticated client connection on the listener's client connector. */
async function submitter(fx: Fixture): Promise<RawClient> {
  const { c } = await RawClient.connect(fx.ports.client);
  await c.cmd('EHLO client.test');
  await c.starttls(fx.ca);
  await c.cmd('EHLO client.test');
  expect((await c.authPlain('nancy', USERS.nancy)).code).toBe(235);
  return c;
}

const msg = (id: string): string => message({ from: 'nancy@example.test', to: 'bob@example.test', id, body: `body of ${id}\r\nEND ${id}` });

describePeers('submission listener → smtp-sink', ['smtp-tools'], () => {
  it('relays envelope and message; the 250 comes after the sink accepted', async () => {
    const s = await sink();
    const fx = await listenerTo(`smtp://127.0.0.1:${s.port}`);
    const c = await submitter(fx);
    expect((await c.cmd('MAIL FROM:<nancy@example.test> SIZE=300')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<carol@example.test>')).code).toBe(250);
    expect(await c.data(msg('sink-1@test'))).toMatchObject({ code: 250, text: '2.0.0 Ok: queued' });
    c.destroy();
    const [d] = dumps(s.dumpDir);
    expect(d).toContain('X-Mail-Args: <nancy@example.test>');
    expect(d).toContain('+0000\n\nbody of sink-1@test\nEND sink-1@test');
    expect(d).toMatch(/X-Rcpt-Args: <bob@example\.test>\nX-Rcpt-Args: <carol@example\.test>/);
    expect(d).toMatch(/Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLSv1\.3/);
    expect(d).toContain('END sink-1@test');
  });

  it('mirrors the next hop: RCPT soft-refused → 4xx, end of data refused → 5xx, nothing acknowledged', async () => {
    const soft = await sink(['-r', 'rcpt']);
    const fx1 = await listenerTo(`smtp://127.0.0.1:${soft.port}`);
    const c1 = await submitter(fx1);
    expect((await c1.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    const r = await c1.cmd('RCPT TO:<bob@example.test>');
    expect(r.code).toBeGreaterThanOrEqual(400);
    expect(r.code).toBeLessThan(500);
    expect(await c1.cmd('DATA')).toMatchObject({ code: 503 });
    c1.destroy();

    const hard = await sink(['-f', '.']);
    const fx2 = await listenerTo(`smtp://127.0.0.1:${hard.port}`);
    const c2 = await submitter(fx2);
    expect((await c2.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c2.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    const d = await c2.data(msg('hard-1@test'));
    expect(d.code).toBeGreaterThanOrEqual(500);
    c2.destroy();
  });

  it('next hop down at MAIL → 451 4.4.1; killed mid-transaction → 451, and the client was never told 250', async () => {
    const s = await sink();
    const fx = await listenerTo(`smtp://127.0.0.1:${s.port}`);
    const c = await submitter(fx);
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    s.child.kill('SIGKILL');
    await new Promise((r) => s.child.once('exit', r));
    const d = await c.data(msg('killed-1@test'));
    expect(d.code).toBe(451);
    expect(await c.cmd('MAIL FROM:<nancy@example.test>')).toMatchObject({ code: 451, text: '4.4.1 Next hop not reachable, try again later' });
    c.destroy();
  });

  it('a client that drops mid-DATA leaves no message at the next hop (no final dot sent)', async () => {
    const s = await sink();
    const fx = await listenerTo(`smtp://127.0.0.1:${s.port}`);
    const c = await submitter(fx);
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write(`${msg('dropped-1@test').split('\r\n\r\n')[0] ?? ''}\r\n\r\n${'filler line\r\n'.repeat(2000)}`);
    await new Promise((r) => setTimeout(r, 200));
    c.destroy();
    await new Promise((r) => setTimeout(r, 500));
    // smtp-sink keeps a dump only for a transaction that ended with the final dot.
    expect(dumps(s.dumpDir).filter((d) => d.includes('dropped-1@test'))).toEqual([]);
    // The listener is unharmed: the next client is served.
    const c2 = await submitter(fx);
    expect((await c2.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c2.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    expect((await c2.data(msg('after-drop@test'))).code).toBe(250);
    c2.destroy();
  });

  it('a next hop that does not answer in time → 451 after the command timeout', async () => {
    const s = await sink(['-w', '5']); // waits 5 s before answering DATA
    const fx = await listenerTo(`smtp://127.0.0.1:${s.port}`);
    const c = await submitter(fx);
    expect((await c.cmd('MAIL FROM:<nancy@example.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.test>')).code).toBe(250);
    const d = await c.data(msg('slow-1@test'));
    expect(d.code).toBe(451);
    c.destroy();
  });

  it('flapping next hop, bounded run: every acknowledged Message-ID arrived; duplicates counted', async () => {
    const first = await sink();
    const port = first.port;
    const dirs = [first.dumpDir];
    const fx = await listenerTo(`smtp://127.0.0.1:${port}`);
    let current: SmtpSink | null = first;
    let stop = false;
    const flapper = (async () => {
      while (!stop) {
        await new Promise((r) => setTimeout(r, 120));
        if (current !== null) {
          current.child.kill('SIGKILL');
          await new Promise((r) => current?.child.once('exit', r));
          current = null;
        } else {
          const next = await sink([], port).catch(() => null); // the port may linger a moment: try again next round
          if (next !== null) {
            dirs.push(next.dumpDir);
            current = next;
          }
        }
      }
    })();
    const acked: string[] = [];
    let refused = 0;
    const deadline = Date.now() + 8_000;
    for (let i = 0; i < 150 && Date.now() < deadline; i++) {
      const id = `flap-${i}@test`;
      const c = await submitter(fx);
      try {
        const m = await c.cmd('MAIL FROM:<nancy@example.test>');
        const r = m.code === 250 ? await c.cmd('RCPT TO:<bob@example.test>') : m;
        const d = r.code === 250 ? await c.data(msg(id)) : r;
        if (d.code === 250) acked.push(id);
        else {
          expect(d.code).toBeGreaterThanOrEqual(400);
          expect(d.code).toBeLessThan(500);
          refused++;
        }
      } finally {
        c.destroy();
      }
    }
    stop = true;
    await flapper;
    await new Promise((r) => setTimeout(r, 300));
    // Complete copies only: a dump counts when its body's last line arrived.
    const seen = new Map<string, number>();
    for (const dir of dirs) for (const d of dumps(dir)) {
      const id = /Message-ID: <([^>]+)>/.exec(d)?.[1];
      if (id !== undefined && d.includes(`END ${id}`)) seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    const lost = acked.filter((id) => !seen.has(id));
    const duplicates = [...seen.values()].reduce((n, k) => n + k - 1, 0);
    const unacknowledgedButDelivered = [...seen.keys()].filter((id) => !acked.includes(id)).length;
    console.log(`[flapping] acknowledged ${acked.length}, refused 4xx ${refused}, delivered ${seen.size}, lost ${lost.length}, duplicate copies ${duplicates}, delivered without 250 ${unacknowledgedButDelivered}`);
    expect(acked.length).toBeGreaterThan(5);
    expect(refused).toBeGreaterThan(0);
    expect(lost).toEqual([]);
  }, 30_000);
});

describePeers('submission listener → Postfix', ['postfix'], () => {
  it('Postfix queues what the listener acknowledged, with our Received header on top', async () => {
    const pf = peers.add(await startPostfix({ delivery: { kind: 'maildir' } }));
    const fx = await listenerTo(`smtp://127.0.0.1:${pf.port}`);
    const c = await submitter(fx);
    expect(await c.cmd('MAIL FROM:<nancy@example.test>'), pf.readMaillog()).toMatchObject({ code: 250 });
    expect(await c.cmd('RCPT TO:<bob@example.test>'), pf.readMaillog()).toMatchObject({ code: 250 });
    const d = await c.data(msg('postfix-1@test'));
    expect(d, pf.readMaillog()).toMatchObject({ code: 250 });
    c.destroy();
    const [m] = await pf.waitForMail(undefined, 1, 15_000);
    expect(m).toContain('Message-ID: <postfix-1@test>');
    expect(m).toMatch(/Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLSv1\.3[^\n]*\n\t\(Authenticated sender: nancy\)/);
  });
});
