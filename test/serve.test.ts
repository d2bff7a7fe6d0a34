/**
 * `mta-policy serve` as an operator runs it: the built CLI (dist/cli/index.js, `npm test` builds
 * it) in a child process on examples/northwind.yaml with a milter and a policy server added (or
 * a connector served by the native submission listener, reached with nodemailer),
 * talked to over real sockets — the MTA-side milter client and Postfix's policy protocol.
 * Milter ports are chosen free by the test (the configuration has no port 0); policy servers
 * listen on unix sockets in each test's own directory, so parallel runs never collide.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from '@node-rs/bcrypt';
import { createTransport } from 'nodemailer';
import { afterEach, describe, expect, it } from 'vitest';
import { MilterClient, type MacroPairs } from '../adapters/milter/client.js';
import { ReplyDecoder, encodeRequest } from '../adapters/postfix-policy/codec.js';
import { NORTHWIND, northwindText } from './bench/milter-config.js';
import { root } from './helpers/engine.js';
import { makeSelfSignedCert } from './peers/tls.js';

const CLI = join(root, 'dist', 'cli', 'index.js');
const RELAY_DENIED = '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain';

type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A running `serve` child: its JSON log lines, its stderr and its exit. */
class Serve {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(JSON.parse(text) as LogLine);
      }
      this.wake();
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
      this.wake();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => (resolve({ code, signal }), this.wake())));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first log line (from index `from` on) matching `pred`. */
  async line(pred: (l: LogLine) => boolean, from = 0, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find(pred);
      if (hit !== undefined) return hit;
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`no matching log line (exit ${this.child.exitCode}); stdout:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${this.stderr}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }
}

const running: Serve[] = [];
const dirs: string[] = [];
const holders: Server[] = [];
const clients: MilterClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of running.splice(0)) {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await s.exited;
  }
  for (const h of holders.splice(0)) h.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function workDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mta-policy-serve-'));
  dirs.push(d);
  return d;
}

/** A port the OS just handed out, or one kept busy when `hold` (for the port-in-use test). */
async function loopbackPort(hold = false): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, r));
  const port = (s.address() as { port: number }).port;
  if (hold) holders.push(s);
  else await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Setup {
  readonly dir: string;
  readonly file: string;
  readonly milter: string;
  readonly policy: string;
}

/** Northwind with a milter on a free loopback port and a policy server on a unix socket. */
async function setup(opts: { milterPort?: number; text?: (t: string) => string } = {}): Promise<Setup> {
  const dir = workDir();
  const milter = `inet:${opts.milterPort ?? (await loopbackPort())}@127.0.0.1`;
  const policy = `unix:${join(dir, 'policy.sock')}`;
  const file = join(dir, 'mta-policy.yaml');
  const text = northwindText({}, { milter: { listen: milter }, postfix_policy: { listen: policy } });
  writeFileSync(file, opts.text === undefined ? text : opts.text(text));
  return { dir, file, milter, policy };
}

function serve(file: string, ...args: string[]): Serve {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const s = new Serve(spawn(process.execPath, [CLI, 'serve', '--config', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  running.push(s);
  return s;
}

/** Started: both "listening" lines are out. */
async function started(s: Serve): Promise<void> {
  await s.line((l) => l.msg === 'listening' && l['adapter'] === 'postfix-policy');
  await s.line((l) => l.msg === 'listening' && l['adapter'] === 'milter');
}

/** One policy request over a fresh connection; resolves with the `action=` value. */
function policyAction(address: string, attrs: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path: address.replace(/^unix:/, '') });
    const dec = new ReplyDecoder();
    sock.on('data', (chunk: Buffer) => {
      const r = dec.push(chunk);
      if (r.error !== undefined) reject(r.error);
      const a = r.actions[0];
      if (a !== undefined) {
        sock.end();
        resolve(a);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('policy server closed the connection without an answer')));
    sock.write(encodeRequest({ ...attrs }));
  });
}

/** RCPT from the Internet to a domain we do not accept, seen by Postfix on 192.0.2.10:25. */
const RELAY_RCPT = {
  request: 'smtpd_access_policy',
  protocol_state: 'RCPT',
  protocol_name: 'ESMTP',
  client_address: '198.51.100.7',
  client_name: 'unknown',
  helo_name: 'client.example.test',
  server_address: '192.0.2.10',
  server_port: '25',
  sender: 'a@example.net',
  recipient: 'bob@example.org',
  queue_id: '',
  instance: 'a1.b2.c3',
  size: '0',
};

const connectMacros = (): MacroPairs => ({
  '{daemon_addr}': '192.0.2.10',
  '{daemon_port}': '25',
  j: 'mx.northwind.test',
  _: 'unknown [198.51.100.7]',
  '{client_addr}': '198.51.100.7',
  '{client_port}': '40001',
});

/** A milter connection through CONNECT and EHLO from the Internet. */
async function milterGreeted(address: string): Promise<MilterClient> {
  const c = await MilterClient.open(address);
  clients.push(c);
  await c.negotiate();
  expect(await c.connect('[198.51.100.7]', 'inet', '198.51.100.7', 40001, connectMacros())).toEqual({ kind: 'continue' });
  expect(await c.helo('client.example.test')).toEqual({ kind: 'continue' });
  return c;
}

describe('mta-policy serve', () => {
  it('starts the milter and the policy server, logs one line per listener, and answers on both', async () => {
    const cfg = await setup();
    const s = serve(cfg.file);
    await started(s);
    const listening = s.lines.filter((l) => l.msg === 'listening');
    expect(listening).toHaveLength(2);
    const connectors = [NORTHWIND.client, NORTHWIND.internet, NORTHWIND.lan, NORTHWIND.partner, NORTHWIND.scanner];
    expect(listening.find((l) => l['adapter'] === 'milter')).toMatchObject({ level: 30, listen: cfg.milter, connectors });
    expect(listening.find((l) => l['adapter'] === 'postfix-policy')).toMatchObject({ level: 30, listen: cfg.policy, connectors });

    const c = await milterGreeted(cfg.milter);
    expect(await c.mail(['<a@example.net>'])).toEqual({ kind: 'continue' });
    expect(await c.rcpt(['<bob@example.org>'])).toEqual({ kind: 'replyCode', text: RELAY_DENIED });
    expect(await c.rcpt(['<nancy@northwind.test>'])).toEqual({ kind: 'continue' });

    expect(await policyAction(cfg.policy, RELAY_RCPT)).toBe(RELAY_DENIED);
    expect(await policyAction(cfg.policy, { ...RELAY_RCPT, recipient: 'nancy@northwind.test' })).toBe('OK');
    // Each decision is logged by the one engine, as JSON on stdout.
    await s.line((l) => l.msg === 'decision' && l['stage'] === 'rcpt' && l['reason'] === 'relay_denied');
    expect(s.stderr).toBe('');
  });

  it('a port in use: exit code 1, one line on stderr naming the file, key and address, and the policy socket is not left behind', async () => {
    const port = await loopbackPort(true);
    const cfg = await setup({ milterPort: port });
    const s = serve(cfg.file);
    const { code } = await s.exited;
    expect(code).toBe(1);
    const lines = s.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^mta-policy: ${cfg.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+: milter: cannot listen on inet:${port}@127\\.0\\.0\\.1: .*EADDRINUSE`));
    expect(s.lines.filter((l) => l.msg === 'listening')).toEqual([]);
    expect(existsSync(join(cfg.dir, 'policy.sock'))).toBe(false);
  });

  it('a policy socket in a missing directory fails after the milter started: the milter is closed again', async () => {
    const cfg = await setup({ text: (t) => t.replace(/unix:[^"\s]*policy\.sock/, (m) => m.replace('policy.sock', 'missing/policy.sock')) });
    const s = serve(cfg.file);
    expect((await s.exited).code).toBe(1);
    expect(s.stderr).toMatch(/^mta-policy: .*:\d+: postfix_policy: cannot listen on unix:.*missing\/policy\.sock: .*\n$/);
    // The milter's port is free again: a second listener can take it.
    const port = Number(/inet:(\d+)@/.exec(cfg.milter)?.[1]);
    const probe = createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen({ host: '127.0.0.1', port, exclusive: true }, resolve));
    holders.push(probe);
  });

  it('serves listen: true connectors with the native submission listener: STARTTLS, AUTH, delivered into the Maildir', async () => {
    const dir = workDir();
    const cert = await makeSelfSignedCert(dir, { commonName: 'smtp.northwind.test', keyType: 'ec' });
    const port = await loopbackPort();
    const maildir = join(dir, 'maildir');
    const file = join(dir, 'native.yaml');
    const text = northwindText({ [NORTHWIND.client]: { listen: true, bindings: [`127.0.0.1:${port}`] } }, { postfix_policy: { listen: `unix:${join(dir, 'policy.sock')}` } })
      .replace(/^server:\n/m, `server:\n  tls: { cert: ${cert.cert}, key: ${cert.key} }\n  next_hop: "maildir:${maildir}"\n`)
      // A function, not a replacement string: the bcrypt hash holds `$2b$…`.
      .replace(/^(\s*)- name: nancy$/m, (line: string, indent: string) => `${line}\n${indent}  password: "{BLF-CRYPT}${hashSync('nancy-demo', 4)}"`);
    writeFileSync(file, text);
    const s = serve(file);
    const line = await s.line((l) => l.msg === 'listening' && l['adapter'] === 'submission');
    expect(line).toMatchObject({ level: 30, listen: `127.0.0.1:${port}`, connectors: [NORTHWIND.client] });

    const transport = createTransport({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { ca: readFileSync(cert.cert), servername: 'smtp.northwind.test' }, auth: { user: 'nancy', pass: 'nancy-demo' } });
    try {
      const info = await transport.sendMail({ from: 'nancy@northwind.test', to: 'andrew@northwind.test', subject: 'served', text: 'through mta-policy serve', messageId: '<served-1@northwind.test>' });
      expect(info.response).toMatch(/^250 /);
      expect(info.accepted).toEqual(['andrew@northwind.test']);
    } finally {
      transport.close();
    }
    const delivered = readdirSync(join(maildir, 'new'));
    expect(delivered).toHaveLength(1);
    expect(readFileSync(join(maildir, 'new', delivered[0] as string), 'utf8')).toContain('Message-ID: <served-1@northwind.test>');
    s.child.kill('SIGTERM');
    expect((await s.exited).code).toBe(0);
    expect(s.stderr).toBe('');
  });

  it('a bad configuration at start-up is reported as check reports it (file:line: key), nothing listens', async () => {
    const cfg = await setup({ text: (t) => t.replace('dialect: exchange', 'dialect: klingon') });
    const s = serve(cfg.file);
    expect((await s.exited).code).toBe(1);
    expect(s.stderr).toMatch(new RegExp(`^mta-policy: ${cfg.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: server\\.dialect: `));
    expect(s.lines.filter((l) => l.msg === 'listening')).toEqual([]);
  });

  it('SIGTERM with a milter conversation in flight: no new connections, the conversation finishes, exit 0', async () => {
    const cfg = await setup();
    const s = serve(cfg.file, '--shutdown-timeout', '20');
    await started(s);
    const c = await milterGreeted(cfg.milter);
    s.child.kill('SIGTERM');
    await s.line((l) => l.msg?.startsWith('shutting down') === true);
    await s.line((l) => l.msg === 'postfix policy server closed');
    await expect(MilterClient.open(cfg.milter)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    expect(await c.mail(['<a@example.net>'])).toEqual({ kind: 'continue' });
    expect(await c.rcpt(['<nancy@northwind.test>'])).toEqual({ kind: 'continue' });
    expect(await c.header('Subject', 'in flight')).toEqual({ kind: 'continue' });
    expect(await c.eoh()).toEqual({ kind: 'continue' });
    expect(await c.body('hello\r\n')).toEqual({ kind: 'continue' });
    expect((await c.eom()).verdict).toEqual({ kind: 'accept' });
    expect(s.child.exitCode).toBeNull();
    await c.quit();
    const { code } = await s.exited;
    expect(code).toBe(0);
    expect(s.lines.at(-1)?.msg).toBe('stopped');
  });

  it('SIGTERM with a conversation that outlives --shutdown-timeout: dropped at the deadline, exit 0', async () => {
    const cfg = await setup();
    const s = serve(cfg.file, '--shutdown-timeout', '0.3');
    await started(s);
    const c = await milterGreeted(cfg.milter);
    s.child.kill('SIGTERM');
    const { code } = await s.exited;
    expect(code).toBe(0);
    expect(s.lines.some((l) => l.msg === 'milter close deadline reached; dropping open connections')).toBe(true);
    await expect(c.mail(['<a@example.net>'])).rejects.toMatchObject({ code: 'MILTER_CONNECTION_CLOSED' });
  });

  it('a second signal exits at once, non-zero, while a conversation still holds the listener', async () => {
    const cfg = await setup();
    const s = serve(cfg.file, '--shutdown-timeout', '60');
    await started(s);
    await milterGreeted(cfg.milter);
    s.child.kill('SIGINT');
    await s.line((l) => l.msg?.startsWith('shutting down') === true);
    s.child.kill('SIGINT');
    expect((await s.exited).code).toBe(1);
  });

  it('SIGHUP with a broken configuration: logged with file and line, the running one keeps answering', async () => {
    const cfg = await setup();
    const s = serve(cfg.file, '--no-watch');
    await started(s);
    const { readFileSync } = await import('node:fs');
    writeFileSync(cfg.file, readFileSync(cfg.file, 'utf8').replace('dialect: exchange', 'dialect: klingon'));
    const from = s.lines.length;
    s.child.kill('SIGHUP');
    const line = await s.line((l) => l.msg?.startsWith('configuration not reloaded') === true, from);
    expect(line).toMatchObject({ level: 50, trigger: 'SIGHUP', code: 'CONFIG_INVALID' });
    expect(line.msg).toContain(`${cfg.file}:`);
    expect((line['issues'] as string[])[0]).toMatch(new RegExp(`^${cfg.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: server\\.dialect: `));
    expect(await policyAction(cfg.policy, RELAY_RCPT)).toBe(RELAY_DENIED);
    const c = await milterGreeted(cfg.milter);
    expect(await c.mail(['<a@example.net>'])).toEqual({ kind: 'continue' });
    expect(await c.rcpt(['<bob@example.org>'])).toEqual({ kind: 'replyCode', text: RELAY_DENIED });
  });

  it('SIGHUP with a changed configuration: the new decision is visible on both listeners', async () => {
    const cfg = await setup();
    const s = serve(cfg.file, '--no-watch');
    await started(s);
    const c = await milterGreeted(cfg.milter);
    const { readFileSync } = await import('node:fs');
    writeFileSync(cfg.file, readFileSync(cfg.file, 'utf8').replace('Unable to relay recipient in non-accepted domain', 'We are no open relay'));
    const from = s.lines.length;
    s.child.kill('SIGHUP');
    await s.line((l) => l.msg === 'configuration reloaded', from);
    expect(await policyAction(cfg.policy, RELAY_RCPT)).toBe('550 5.7.54 SMTP; We are no open relay');
    // A connection opened before the reload keeps its session's snapshot; a new one sees the change.
    const d = await milterGreeted(cfg.milter);
    expect(await d.mail(['<a@example.net>'])).toEqual({ kind: 'continue' });
    expect(await d.rcpt(['<bob@example.org>'])).toEqual({ kind: 'replyCode', text: '550 5.7.54 SMTP; We are no open relay' });
    expect(await c.mail(['<a@example.net>'])).toEqual({ kind: 'continue' });
    expect(s.lines.slice(from).filter((l) => l.level !== undefined && l.level >= 40)).toEqual([]);
  });

  it('editing the file reloads it (debounced, once), and a listener change is logged as needing a restart', async () => {
    const cfg = await setup();
    const s = serve(cfg.file);
    await started(s);
    const { readFileSync } = await import('node:fs');
    const other = `inet:${await loopbackPort()}@127.0.0.1`;
    const from = s.lines.length;
    writeFileSync(cfg.file, readFileSync(cfg.file, 'utf8').replace(cfg.milter, other).replace('Unable to relay recipient in non-accepted domain', 'Edited'));
    const warn = await s.line((l) => l.msg?.startsWith('the configured listeners differ') === true, from);
    expect(warn).toMatchObject({ level: 40, trigger: 'file' });
    expect(warn['listening']).toContain(`milter ${cfg.milter}`);
    expect(warn['configured']).toContain(`milter ${other}`);
    expect(s.lines.slice(from).filter((l) => l.msg === 'configuration reloaded')).toHaveLength(1);
    // The running listeners stay where they were and answer with the new policy.
    expect(await policyAction(cfg.policy, RELAY_RCPT)).toBe('550 5.7.54 SMTP; Edited');
    const c = await milterGreeted(cfg.milter);
    expect(await c.mail(['<a@example.net>'])).toEqual({ kind: 'continue' });
  });
});
