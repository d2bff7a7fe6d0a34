import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as C from '../../adapters/milter/constants.js';
import { MilterServerError, MilterUsageError } from '../../adapters/milter/errors.js';
import { formatListen } from '../../adapters/milter/listen.js';
import { MilterServer, QUEUE_HIGH_WATER, type MilterServerOptions } from '../../adapters/milter/server.js';
import { encodeCommand } from '../../adapters/milter/commands.js';
import { MilterClient } from '../../adapters/milter/client.js';
import { recordingLogger, scriptedHandler, type Call } from './helpers.js';
import { describePeers } from '../peers/skip.js';

const started: MilterServer[] = [];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mta-policy-milter-'));
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close(100)));
  rmSync(dir, { recursive: true, force: true });
});

async function start(opts: Partial<MilterServerOptions> & { script?: Parameters<typeof scriptedHandler>[0] } = {}): Promise<{ server: MilterServer; calls: Call[]; log: ReturnType<typeof recordingLogger> }> {
  const calls: Call[] = [];
  const log = recordingLogger();
  const { script, ...rest } = opts;
  const server = await MilterServer.start({ listen: 'inet:0@127.0.0.1', logger: log, createHandler: () => scriptedHandler(script ?? {}, calls), ...rest });
  started.push(server);
  return { server, calls, log };
}

/** A whole message over the client; returns the reply kinds (undefined for NR). */
async function conversation(c: MilterClient, rcpt = '<bob@example.org>'): Promise<(string | undefined)[]> {
  const out: (string | undefined)[] = [];
  const push = (r: { kind: string } | undefined): void => {
    out.push(r?.kind);
  };
  push(await c.connect('client.example', 'inet', '192.0.2.1', 40000, { j: 'mx.test', '{daemon_addr}': '192.0.2.25' }));
  push(await c.helo('client.example'));
  push(await c.mail(['<alice@example.net>'], { '{mail_addr}': 'alice@example.net' }));
  push(await c.rcpt([rcpt]));
  push(await c.data());
  push(await c.header('Subject', 'hello'));
  push(await c.eoh());
  push(await c.body('body\r\n'));
  const eom = await c.eom();
  out.push(eom.verdict.kind);
  return out;
}

describe('MilterServer over real sockets', () => {
  it('serves a whole conversation on 127.0.0.1:0', async () => {
    const { server, calls, log } = await start({ script: { rcpt: (a: readonly string[]) => (a[0] === '<no@example.org>' ? { kind: 'reject', reply: { code: 550, enhanced: '5.7.1', text: 'Relay denied' } } : { kind: 'continue' }) } });
    expect(server.address).toMatchObject({ transport: 'inet', host: '127.0.0.1' });
    const c = await MilterClient.open(server.address);
    const neg = await c.negotiate();
    expect(neg).toMatchObject({ version: 6, protocol: C.SMFIP_SKIP });
    expect(await conversation(c)).toEqual(Array(9).fill('continue'));
    c.abort(); // Postfix's ABORT after every message: a no-op here
    expect(await c.mail(['<x@example.net>'])).toEqual({ kind: 'continue' });
    expect(await c.rcpt(['<no@example.org>'])).toEqual({ kind: 'replyCode', text: '550 5.7.1 Relay denied' });
    await c.quit();
    await waitFor(() => calls.some((x) => x.method === 'close'));
    expect(calls.find((x) => x.method === 'connect')?.args[0]).toEqual({ hostname: 'client.example', family: 'inet', address: '192.0.2.1', port: 40000 });
    expect(calls.find((x) => x.method === 'mail')?.macros).toEqual({ j: 'mx.test', '{daemon_addr}': '192.0.2.25', '{mail_addr}': 'alice@example.net' });
    expect(log.lines.some((l) => l.msg === 'milter listening' && l.obj.listen === formatListen(server.address))).toBe(true);
  });

  it('listens on IPv6 loopback (inet6:0@::1)', async () => {
    const { server } = await start({ listen: 'inet6:0@[::1]' });
    expect(server.address).toMatchObject({ family: 6, host: '::1' });
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    expect(await c.connect('h', 'inet6', '2001:db8::1', 1)).toEqual({ kind: 'continue' });
    await c.quit();
  });

  it('listens on a unix socket with the configured mode, and removes it on close', async () => {
    const path = join(dir, 'milter.sock');
    const { server } = await start({ listen: `unix:${path}`, socketMode: 0o600 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const c = await MilterClient.open(`unix:${path}`);
    await c.negotiate();
    expect(await conversation(c)).toEqual(Array(9).fill('continue'));
    await c.quit();
    await server.close();
    expect(existsSync(path)).toBe(false);
  });

  it('replaces a stale unix socket, but never a live one or a regular file', async () => {
    const stale = join(dir, 'stale.sock');
    // A process that dies without closing leaves its socket file behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(stale).isSocket()).toBe(true);
    await start({ listen: `unix:${stale}` });
    await expect(start({ listen: `unix:${stale}` })).rejects.toMatchObject({ code: 'MILTER_LISTEN_FAILED', message: expect.stringContaining('another process') });
    const file = join(dir, 'file');
    writeFileSync(file, 'keep me');
    await expect(start({ listen: `unix:${file}` })).rejects.toMatchObject({ code: 'MILTER_LISTEN_FAILED', message: expect.stringContaining('not a socket') });
    expect(existsSync(file)).toBe(true);
  });

  it('reports listen failures clearly', async () => {
    const { server } = await start();
    const busy = server.address.transport === 'inet' ? server.address.port : 0;
    await expect(start({ listen: `inet:${busy}@127.0.0.1` })).rejects.toBeInstanceOf(MilterServerError);
    await expect(start({ listen: `unix:${join(dir, 'missing', 'x.sock')}` })).rejects.toMatchObject({ code: 'MILTER_LISTEN_FAILED' });
    await expect(start({ listen: 'tcp:8891@127.0.0.1' })).rejects.toBeInstanceOf(MilterUsageError);
    await expect(start({ listen: 'inet:8891' })).rejects.toBeInstanceOf(MilterUsageError);
  });

  it('a handler that throws makes the MTA see TEMPFAIL', async () => {
    const { server, log } = await start({ script: { mail: () => { throw new Error('engine exploded'); } } });
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    await c.connect('h', 'inet', '192.0.2.1', 1);
    expect(await c.mail(['<a@x>'])).toEqual({ kind: 'tempfail' });
    expect(log.lines.some((l) => l.level === 'error' && l.obj.code === 'MILTER_HANDLER_FAILED')).toBe(true);
    await c.quit();
  });

  it('garbage closes that one connection; another connection keeps working', async () => {
    const { server, log } = await start();
    const good = await MilterClient.open(server.address);
    await good.negotiate();
    const bad = await MilterClient.open(server.address);
    await bad.negotiate();
    bad.sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await bad.closed;
    expect(await conversation(good)).toEqual(Array(9).fill('continue'));
    await good.quit();
    expect(log.lines.some((l) => l.level === 'warn' && l.obj.code === 'MILTER_FRAME_TOO_LARGE')).toBe(true);
    // an unknown command byte and a zero length as well
    for (const junk of [Buffer.from('000000017a', 'hex'), Buffer.from('00000000', 'hex')]) {
      const c = await MilterClient.open(server.address);
      c.sendRaw(junk);
      await c.closed;
    }
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.obj.code)).toEqual(expect.arrayContaining(['MILTER_COMMAND_UNKNOWN', 'MILTER_FRAME_EMPTY']));
  });

  it('a slow handler or a dead MTA connection does not block other connections', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const { server } = await start({
      handlerTimeoutMs: 5000,
      script: { helo: async (name: string) => { if (name === 'slow') await gate; return { kind: 'continue' }; } },
    });
    const slow = await MilterClient.open(server.address);
    await slow.negotiate();
    await slow.connect('h', 'inet', '192.0.2.1', 1);
    const slowHelo = slow.helo('slow');
    const dead = await MilterClient.open(server.address);
    dead.sendRaw(encodeCommand({ kind: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff }).subarray(0, 7)); // half a frame, then silence
    const fast = await MilterClient.open(server.address);
    await fast.negotiate();
    const t0 = Date.now();
    expect(await conversation(fast)).toEqual(Array(9).fill('continue'));
    expect(Date.now() - t0).toBeLessThan(2000);
    release();
    expect(await slowHelo).toEqual({ kind: 'continue' });
    for (const c of [slow, fast]) await c.quit();
    dead.destroy();
  });

  it('pipelined commands under NR flags are handled in order, one reply for EOM only', async () => {
    const seen: string[] = [];
    const { server } = await start({
      needs: { noReply: ['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body'] },
      script: { header: async (name: string) => { seen.push(name); await new Promise((r) => setTimeout(r, 1)); return { kind: 'continue' }; } },
    });
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    await c.connect('h', 'inet', '192.0.2.1', 1);
    await c.mail(['<a@x>']);
    await c.rcpt(['<b@y>']);
    for (let i = 0; i < 300; i++) c.write({ kind: 'header', name: `X-H${i}`, value: 'v'.repeat(100) });
    const eom = await c.eom();
    expect(eom.verdict).toEqual({ kind: 'continue' });
    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => `X-H${i}`));
    expect(c.pendingReplies).toBe(0);
    await c.quit();
  });

  it('stops reading while commands wait beyond QUEUE_HIGH_WATER: a pipelining MTA is held back in its own send buffer', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let headers = 0;
    const { server } = await start({
      needs: { noReply: ['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body'] },
      script: { header: async () => { if (headers++ === 0) await gate; return { kind: 'continue' }; } },
    });
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    await c.connect('h', 'inet', '192.0.2.1', 1);
    await c.mail(['<a@x>']);
    await c.rcpt(['<b@y>']);
    const n = 16_000; // ~16 MiB of HEADER commands while the first one is still being handled
    for (let i = 0; i < n; i++) c.write({ kind: 'header', name: 'X-H', value: 'v'.repeat(1000) });
    const mta = (c as unknown as { socket: Socket }).socket;
    await new Promise((r) => setTimeout(r, 300));
    expect(QUEUE_HIGH_WATER).toBeLessThan(1024 * 1024);
    expect(mta.writableLength).toBeGreaterThan(8 * 1024 * 1024); // the server is not reading it all into memory
    release();
    const eom = await c.eom();
    expect(eom.verdict).toEqual({ kind: 'continue' });
    expect(headers).toBe(n);
    await c.quit();
  });

  it('drops an MTA that stays silent past the idle timeout', async () => {
    const { server, log, calls } = await start({ idleTimeoutMs: 100 });
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    await c.connect('h', 'inet', '192.0.2.1', 1);
    await c.closed;
    expect(log.lines.some((l) => l.obj.code === 'MILTER_TIMEOUT')).toBe(true);
    await waitFor(() => calls.some((x) => x.method === 'close'));
  });

  it('drops an MTA that does not read its replies within the write timeout', async () => {
    const big = Buffer.alloc(48 * 1024 * 1024, 0x61);
    const { server, log } = await start({ writeTimeoutMs: 200, needs: { optionalActions: C.SMFIF_CHGBODY }, script: { eom: () => ({ modifications: [{ kind: 'replaceBody', body: big }], action: { kind: 'continue' } }) } });
    const a = server.address;
    if (a.transport !== 'inet') throw new Error('inet expected');
    const sock = connect({ host: a.host, port: a.port });
    await new Promise((r) => sock.once('connect', r));
    sock.pause(); // never read
    for (const cmd of [
      { kind: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff },
      { kind: 'connect', hostname: 'h', family: 'unknown' },
      { kind: 'mail', args: ['<a@x>'] },
      { kind: 'rcpt', args: ['<b@y>'] },
      { kind: 'eoh' },
      { kind: 'eom', chunk: Buffer.alloc(0) },
    ] as const) sock.write(encodeCommand(cmd));
    // The paused client would never see the close; watch the server instead.
    await waitFor(() => log.lines.some((l) => l.obj.code === 'MILTER_TIMEOUT' && l.msg?.includes('not read') === true), 5000);
    await waitFor(() => server.connections === 0);
    sock.destroy();
  });

  it('closes gracefully: stops accepting, waits for open connections, then drops the rest', async () => {
    const { server, calls } = await start();
    const quitter = await MilterClient.open(server.address);
    await quitter.negotiate();
    const lingerer = await MilterClient.open(server.address);
    await lingerer.negotiate();
    await lingerer.connect('h', 'inet', '192.0.2.1', 1);
    await lingerer.mail(['<a@x>']);
    const t0 = Date.now();
    const closing = server.close(300);
    await expect(MilterClient.open(server.address)).rejects.toThrow();
    await quitter.quit();
    await closing;
    await lingerer.closed;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(server.connections).toBe(0);
    expect(calls.map((c) => c.method)).toEqual(['connect', 'mail', 'abort', 'close']);
  });

  it('never logs macro values, envelope or header contents, even when the handler fails', async () => {
    const { server, log } = await start({ script: { mail: () => Promise.reject(new Error('engine down')), header: () => { throw new Error('bad'); } } });
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    await c.connect('secret-host.example', 'inet', '192.0.2.1', 1, { '{auth_authen}': 'secret-login' });
    expect(await c.mail(['<secret-sender@example.net>'], { '{auth_type}': 'PLAIN' })).toEqual({ kind: 'tempfail' });
    c.sendRaw(Buffer.from('00000001ff', 'hex'));
    await c.closed;
    const text = JSON.stringify(log.lines);
    expect(text).not.toContain('secret');
    expect(log.lines.some((l) => l.level === 'error')).toBe(true);
  });

  it('takes a pino logger as it is', async () => {
    const server = await MilterServer.start({ listen: 'inet:0@127.0.0.1', logger: pino({ level: 'silent' }), createHandler: () => scriptedHandler() });
    started.push(server);
    const c = await MilterClient.open(server.address);
    await c.negotiate();
    await c.quit();
  });

  it('closes at once when no connection is open', async () => {
    const { server } = await start();
    const t0 = Date.now();
    await server.close(5000);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describePeers('miltertest (independent MTA implementation) against the server', ['miltertest'], () => {
  const bin = '/usr/bin/miltertest';
  const have = existsSync(bin);
  it('passes a Lua script exercising every stage, a reject and the EOM edits', async () => {
    expect(have, `${bin} is missing: install the Debian package miltertest`).toBe(true);
    const { server } = await start({
      needs: { optionalActions: C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS | C.SMFIF_QUARANTINE, macros: { connect: ['j', '{daemon_addr}'] } },
      script: {
        rcpt: (a: readonly string[]) => (a[0] === '<denied@example.org>' ? { kind: 'reject', reply: { code: 550, enhanced: '5.7.1', text: 'Relay denied' } } : { kind: 'continue' }),
        eom: (m) => ({
          modifications: [
            { kind: 'addHeader', name: 'X-MTA-Policy', value: `checked by ${m.get('j') ?? '?'}` },
            { kind: 'changeHeader', index: 1, name: 'X-Spoofed', value: '' },
          ],
          action: { kind: 'quarantine', reason: 'held for review' },
        }),
      },
    });
    const a = server.address;
    if (a.transport !== 'inet') throw new Error('inet expected');
    const script = join(dir, 't.lua');
    writeFileSync(
      script,
      `
conn = mt.connect("inet:${a.port}@127.0.0.1")
if conn == nil then error("connect failed") end
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
if not mt.test_action(conn, SMFIF_ADDHDRS) then error("ADDHDRS not requested") end
if mt.test_action(conn, SMFIF_CHGBODY) then error("CHGBODY requested but not needed") end
mt.macro(conn, SMFIC_CONNECT, "j", "mx.miltertest", "{daemon_addr}", "192.0.2.25")
if mt.conninfo(conn, "client.example", "192.0.2.1") ~= nil then error("conninfo failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("connect not continued") end
if mt.helo(conn, "client.example") ~= nil then error("helo failed") end
if mt.mailfrom(conn, "<alice@example.net>") ~= nil then error("mail failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("mail not continued") end
if mt.rcptto(conn, "<denied@example.org>") ~= nil then error("rcpt failed") end
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("denied rcpt not refused with a reply code") end
if mt.rcptto(conn, "<bob@example.org>") ~= nil then error("rcpt 2 failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("rcpt 2 not continued") end
if mt.header(conn, "Subject", "hello") ~= nil then error("header failed") end
if mt.header(conn, "X-Spoofed", "yes") ~= nil then error("header 2 failed") end
if mt.eoh(conn) ~= nil then error("eoh failed") end
if mt.bodystring(conn, "body\\r\\n") ~= nil then error("body failed") end
if mt.eom(conn) ~= nil then error("eom failed") end
if not mt.eom_check(conn, MT_HDRADD, "X-MTA-Policy", "checked by mx.miltertest") then error("header not added") end
if not mt.eom_check(conn, MT_HDRDELETE, "X-Spoofed") then error("header not deleted") end
if not mt.eom_check(conn, MT_QUARANTINE, "held for review") then error("not quarantined") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("eom verdict not continue") end
mt.disconnect(conn)
mt.echo("ALL OK")
`,
    );
    // asynchronously, so that the server in this process can answer
    const out = await execFileAsync(bin, ['-s', script]);
    expect(out).toContain('ALL OK');
  });
});

function execFileAsync(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
