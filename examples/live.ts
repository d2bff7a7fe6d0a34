/**
 * The live half of the README's main job (scripts/example.sh): start `mta-policy serve` on
 * examples/northwind-submission.yaml, send three messages through it with nodemailer (a real
 * SMTP client: STARTTLS, AUTH), print every reply and where the delivered mail lies, stop the
 * server with SIGTERM (by its pid) and exit 0 only if every expectation held.
 *
 *   node dist/examples/live.js [--config FILE]
 *
 * First run: the certificate the configuration names (server.tls) is made with openssl,
 * self-signed for the server's fqdn and 127.0.0.1. test/example.test.ts runs this same file on a
 * copy of the configuration with free ports.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { createTransport, type SentMessageInfo } from 'nodemailer';
import { parse } from 'yaml';
import { projectRoot } from '../engine/bundle.js';

const ROOT = projectRoot();
const CLI = join(ROOT, 'dist', 'cli', 'index.js');
const DEFAULT_CONFIG = join(ROOT, 'examples', 'northwind-submission.yaml');
/** The example's connectors and its demo credential (documented in the configuration file). */
const CLIENT = 'Client Frontend SMTP01';
const INTERNET = 'Default Frontend SMTP01';
const NANCY = { user: 'nancy', pass: 'nancy-demo-password' } as const;
const START_TIMEOUT_MS = 30_000;

type LogLine = Record<string, unknown> & { msg?: string };

/** What the example configuration says, read before it can be loaded (its certificate may not exist yet). */
function readExample(file: string): { cert: string; key: string; fqdn: string; maildir: string } {
  const doc = parse(readFileSync(file, 'utf8')) as { server?: { fqdn?: string; tls?: { cert?: string; key?: string }; next_hop?: string } };
  const s = doc.server ?? {};
  const hop = s.next_hop ?? '';
  if (s.tls?.cert === undefined || s.tls.key === undefined || !hop.startsWith('maildir:')) {
    throw new Error(`${file}: the example needs server.tls (cert, key) and a maildir: server.next_hop`);
  }
  const at = (p: string): string => resolve(dirname(file), p);
  return { cert: at(s.tls.cert), key: at(s.tls.key), fqdn: s.fqdn ?? 'localhost', maildir: at(hop.slice('maildir:'.length)) };
}

/** A self-signed certificate for `fqdn` and 127.0.0.1, unless one is there already. */
async function ensureCertificate(ex: { cert: string; key: string; fqdn: string }): Promise<void> {
  if (existsSync(ex.cert) && existsSync(ex.key)) return;
  mkdirSync(dirname(ex.cert), { recursive: true });
  mkdirSync(dirname(ex.key), { recursive: true });
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '825', '-subj', `/CN=${ex.fqdn}`,
    '-addext', `subjectAltName=DNS:${ex.fqdn},IP:127.0.0.1`, '-keyout', ex.key, '-out', ex.cert];
  await new Promise<void>((ok, fail) => execFile('openssl', args, (e, _out, err) => (e === null ? ok() : fail(new Error(`openssl failed: ${err || e.message}`)))));
  say(`made a self-signed certificate: ${rel(ex.cert)} (key ${rel(ex.key)})`);
}

const rel = (p: string): string => (p.startsWith(ROOT) ? relative(process.cwd(), p) || '.' : p);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

/** `mta-policy serve` as a child; resolves once every connector has its `listening` line. */
async function startServer(config: string): Promise<{ pid: number; running: () => boolean; ports: Map<string, number>; exited: Promise<number | null>; lines: LogLine[] }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--no-watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    buf += s;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, nl)) as LogLine);
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const ports = new Map<string, number>();
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!ports.has(CLIENT) || !ports.has(INTERNET)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill('SIGTERM');
      throw new Error(`mta-policy serve did not start:\n${stderr}${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    }
    for (const l of lines.filter((x) => x.msg === 'listening')) {
      for (const c of l['connectors'] as string[]) ports.set(c, Number(/:(\d+)$/.exec(String(l['listen']))?.[1]));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const l of lines.filter((x) => x.msg === 'listening')) say(`  listening  ${String(l['adapter'])} ${String(l['listen'])}  (${(l['connectors'] as string[]).join(', ')})`);
  return { pid: child.pid as number, running: () => child.exitCode === null && child.signalCode === null, ports, exited, lines };
}

interface Attempt {
  readonly title: string;
  readonly port: number;
  readonly auth?: { user: string; pass: string };
  readonly from: string;
  readonly to: string;
  /** The reply expected (250 for the accepted message, else the refused command and code) and the policy's last reason. */
  readonly expect: { readonly code: number; readonly command?: string; readonly reason: string };
}

/** One message over a fresh connection; returns whether the reply was the expected one. */
async function attempt(a: Attempt, ca: Buffer, fqdn: string, id: string): Promise<{ ok: boolean; info?: SentMessageInfo }> {
  const transport = createTransport({
    host: '127.0.0.1', port: a.port, secure: false, requireTLS: a.auth !== undefined, ignoreTLS: a.auth === undefined,
    tls: { ca, servername: fqdn }, ...(a.auth === undefined ? {} : { auth: a.auth }),
  });
  say(`\n${a.title}`);
  say(`  ${a.auth === undefined ? 'anonymous, plain SMTP' : `STARTTLS, AUTH as ${a.auth.user}`} on 127.0.0.1:${a.port}: MAIL FROM:<${a.from}> RCPT TO:<${a.to}>`);
  try {
    const info = (await transport.sendMail({ from: a.from, to: a.to, subject: 'mta-policy example', text: `${a.title}\r\n`, messageId: id })) as SentMessageInfo;
    say(`  -> ${String(info.response)}`);
    return { ok: a.expect.code === 250 && String(info.response).startsWith('250'), info };
  } catch (e) {
    const err = e as { response?: string; responseCode?: number; command?: string; message: string };
    say(`  -> ${err.command ?? 'connection'}: ${err.response ?? err.message}`);
    return { ok: err.responseCode === a.expect.code && (a.expect.command === undefined || err.command === a.expect.command) };
  } finally {
    transport.close();
  }
}

/** The engine's `decision` log lines from index `from` on, once serve's stdout has been quiet for a moment. */
async function decisions(lines: readonly LogLine[], from: number): Promise<LogLine[]> {
  for (let seen = -1, waited = 0; seen !== lines.length && waited < 2_000; waited += 100) {
    seen = lines.length;
    await new Promise((r) => setTimeout(r, 100));
  }
  return lines.slice(from).filter((l) => l.msg === 'decision');
}

async function main(): Promise<number> {
  const i = process.argv.indexOf('--config');
  const config = resolve(i >= 0 ? (process.argv[i + 1] ?? '') : DEFAULT_CONFIG);
  const ex = readExample(config);
  await ensureCertificate(ex);
  say(`starting: mta-policy serve --config ${rel(config)}`);
  const server = await startServer(config);
  try {
    return await drive(server, ex);
  } finally {
    // Only the child started above, by its pid; a no-op once it has exited.
    if (server.running()) process.kill(server.pid, 'SIGKILL');
  }
}

async function drive(server: Awaited<ReturnType<typeof startServer>>, ex: ReturnType<typeof readExample>): Promise<number> {
  const ca = readFileSync(ex.cert);
  const stamp = `${Date.now()}.${process.pid}`;
  const client = server.ports.get(CLIENT) as number;
  const internet = server.ports.get(INTERNET) as number;
  const attempts: Attempt[] = [
    { title: '1. allowed: nancy submits as herself', port: client, auth: NANCY, from: 'nancy@northwind.test', to: 'andrew@northwind.test', expect: { code: 250, reason: 'ok_eom' } },
    { title: '2. relay refused: an anonymous Internet client sends to a domain we do not host', port: internet, from: 'someone@example.net', to: 'bob@example.org', expect: { code: 550, command: 'RCPT TO', reason: 'relay_denied' } },
    // The policy checks the envelope sender and the header From: together, once the headers are in.
    { title: '3. send-as refused: nancy claims to be andrew', port: client, auth: NANCY, from: 'andrew@northwind.test', to: 'andrew@northwind.test', expect: { code: 550, command: 'DATA', reason: 'send_as_denied' } },
  ];
  let held = 0;
  const firstId = `<example-${stamp}-1@northwind.test>`;
  for (const [n, a] of attempts.entries()) {
    const from = server.lines.length;
    const r = await attempt(a, ca, ex.fqdn, `<example-${stamp}-${n + 1}@northwind.test>`);
    const seen = await decisions(server.lines, from);
    say(`  policy: ${seen.map((l) => `${String(l['stage'])} ${String(l['reason'])}${l['verdict'] === 'continue' ? '' : ` (${String(l['verdict'])})`}`).join(', ')}`);
    const ok = r.ok && seen.at(-1)?.['reason'] === a.expect.reason;
    say(`  ${ok ? 'as expected' : `NOT AS EXPECTED (wanted ${a.expect.code}${a.expect.command === undefined ? '' : ` at ${a.expect.command}`}, reason ${a.expect.reason})`}`);
    if (ok) held++;
  }

  // The accepted message is in the Maildir's new/, under its own file name.
  const fresh = join(ex.maildir, 'new');
  const file = readdirSync(fresh).find((f) => readFileSync(join(fresh, f), 'utf8').includes(`Message-ID: ${firstId}`));
  say(file === undefined ? `\nthe accepted message is NOT in ${rel(fresh)}` : `\ndelivered: ${rel(join(fresh, file))}`);
  if (file !== undefined) held++;

  process.kill(server.pid, 'SIGTERM');
  const code = await server.exited;
  const stopped = code === 0 && server.lines.at(-1)?.msg === 'stopped';
  say(`stopped mta-policy serve (pid ${server.pid}, SIGTERM): exit ${String(code)}`);
  if (stopped) held++;

  const total = attempts.length + 2;
  say(held === total ? `\nall ${total} expectations held` : `\n${total - held} of ${total} expectations FAILED`);
  return held === total ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`example: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
