/**
 * `mta-policy milter-check` against a real running milter: mta-policy's own (startMilter on the
 * example configuration, on 127.0.0.1:0 and on a unix socket) and the engine's decision log as
 * the independent witness of what the milter saw.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMilter } from '../adapters/milter/enforce.js';
import { formatListen } from '../adapters/milter/listen.js';
import type { MilterServer } from '../adapters/milter/server.js';
import { main } from '../cli/program.js';
import { loadConfig } from '../engine/config/load.js';
import { Engine } from '../engine/engine.js';
import { captureIo, root } from './helpers/engine.js';
import { recordingLogger, type LogLine } from './milter/helpers.js';

let work: string;
let inet: MilterServer;
let unix: MilterServer;
const decisions: LogLine[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mta-milter-check-'));
  const engine = await Engine.create({ config: await loadConfig(join(root, 'examples', 'northwind.yaml')), logger: recordingLogger(decisions) });
  inet = await startMilter(engine, { listen: 'inet:0@127.0.0.1', logger: recordingLogger() });
  unix = await startMilter(engine, { listen: `unix:${join(work, 'milter.sock')}`, logger: recordingLogger() });
});
afterAll(async () => {
  await inet.close(1_000);
  await unix.close(1_000);
  await rm(work, { recursive: true, force: true });
});

async function check(facts: unknown, address = formatListen(inet.address)): Promise<{ code: number; out: string; err: string }> {
  const file = join(work, `facts-${decisions.length}-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, typeof facts === 'string' ? facts : JSON.stringify(facts));
  const cap = captureIo();
  const code = await main(['milter-check', '--connect', address, '--facts', file, '--timeout', '5000'], cap.io);
  return { code, out: cap.out(), err: cap.err() };
}

const lines = (out: string): string[] => out.trim().split('\n').map((l) => l.replace(/ +/, ' '));

describe('mta-policy milter-check', () => {
  it('plays a whole Internet conversation and prints every stage: relay refused, the local recipient taken, the header firewall', async () => {
    const r = await check({
      local: '192.0.2.10:25',
      remote: '198.51.100.7',
      helo: 'client.example',
      mail_from: '<alice@example.net>',
      rcpt_to: ['<bob@example.org>', 'nancy@northwind.test'],
      headers: [['From', 'alice@example.net'], ['x-mta-policy-auth-as', 'Internal'], ['Subject', 'hi']],
    });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(lines(r.out).slice(1)).toEqual([
      'connect continue',
      'helo continue',
      'mail continue',
      'rcpt <bob@example.org> reject 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain',
      'rcpt <nancy@northwind.test> continue',
      'eoh continue',
      'eom remove header x-mta-policy-auth-as #1',
      'eom add header X-MTA-Policy-Auth-As: Anonymous',
      'eom accept',
    ]);
    expect(lines(r.out)[0]).toMatch(/^optneg version 6, actions 0x[0-9a-f]+, protocol 0x[0-9a-f]+$/);
    const seen = decisions.filter((d) => d.obj['stage'] === 'rcpt').slice(-2).map((d) => [d.obj['connector'], d.obj['reason']]);
    expect(seen).toEqual([['Default Frontend SMTP01', 'relay_denied'], ['Default Frontend SMTP01', 'ok_rcpt']]);
  });

  it('sends an MTA AUTH as macros: in plaintext on the TLS-required submission connector it is refused at MAIL, over TLS it submits', async () => {
    const base = { local: '192.0.2.10:587', remote: '203.0.113.9', mail_from: '<nancy@northwind.test>', rcpt_to: '<customer@example.test>', auth: { mechanism: 'PLAIN', user: 'nancy' } };
    const plain = await check(base);
    expect(lines(plain.out)).toContain('mail reject 530 5.7.0 Authentication over an unencrypted connection is not permitted');
    expect(lines(plain.out).at(-1)).toMatch(/^mail /); // an MTA stops after a refused MAIL
    const tls = await check({ ...base, tls: { version: 'TLSv1.3' }, message_size: 4000 });
    expect(lines(tls.out).slice(1)).toEqual([
      'connect continue', 'helo continue', 'mail continue', 'rcpt <customer@example.test> continue', 'eoh continue',
      'eom add header X-MTA-Policy-Auth-As: Internal', 'eom add header X-MTA-Policy-Bypass-Anti-Spam: true', 'eom accept',
    ]);
    expect(decisions.filter((d) => d.obj['stage'] === 'eom').at(-1)?.obj['connector']).toBe('Client Frontend SMTP01');
  });

  it('stops before DATA when no recipient was accepted, and speaks over a unix socket', async () => {
    const r = await check({ local: '192.0.2.10:25', remote: '198.51.100.7', mail_from: '<a@example.net>', rcpt_to: ['<b@example.org>'] }, formatListen(unix.address));
    expect(r.code).toBe(0);
    expect(lines(r.out).slice(-2)).toEqual(['rcpt <b@example.org> reject 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain', 'data not sent: no recipient accepted']);
  });

  it('a milter that cannot be reached is one clean line and exit 1', async () => {
    const gone = await startMilter(await Engine.create({ config: await loadConfig(join(root, 'examples', 'northwind.yaml')) }), { listen: 'inet:0@127.0.0.1', logger: recordingLogger() });
    const address = formatListen(gone.address);
    await gone.close(0);
    const r = await check({ local: '192.0.2.10:25', remote: '198.51.100.7' }, address);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^mta-policy: milter at ${address.replace(/[.]/g, '\\.')}: .*ECONNREFUSED.*\\n$`));
  });

  it('bad facts or a bad address are usage errors (exit 2) naming the problem', async () => {
    const noPort = await check({ local: '192.0.2.10', remote: '198.51.100.7' });
    expect(noPort).toMatchObject({ code: 2, out: '' });
    expect(noPort.err).toMatch(/^mta-policy: .*facts-.*\.json: local/);
    const notJson = await check('{ "local": ');
    expect(notJson.code).toBe(2);
    expect(notJson.err).toMatch(/not valid JSON/);
    const badRcpt = await check({ local: '192.0.2.10:25', remote: '198.51.100.7', rcpt_to: [1] });
    expect(badRcpt.err).toMatch(/rcpt_to must be an address or a list/);
    const badAddress = await check({ local: '192.0.2.10:25', remote: '198.51.100.7' }, 'inet:99999@127.0.0.1');
    expect(badAddress.code).toBe(2);
    expect(badAddress.err).toMatch(/^mta-policy: invalid milter listen address "inet:99999@127\.0\.0\.1"/);
  });
});
