/**
 * A real submission listener for tests: a configuration written to a temp directory (a
 * self-signed certificate made with openssl, bcrypt hashes for two users), the engine on the
 * committed policy bundle, and `startSubmission` on free 127.0.0.1 ports:
 *
 *   client  — usage client: STARTTLS, then AUTH PLAIN/LOGIN; 3 recipients, 64 KiB, 2 logon failures
 *   smtps   — usage client, implicit TLS (RFC 8314)
 *   relay   — anonymous relay (Accept-Any-Recipient for anonymous), no AUTH
 *   inbound — usage internet: anonymous mail for example.test only (relay refused)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from '@node-rs/bcrypt';
import { parseConfig } from '../../engine/config/load.js';
import { Engine } from '../../engine/engine.js';
import { startSubmission, type SubmissionListener, type SubmissionOptions } from '../../adapters/submission/server.js';
import { freePorts, makeSelfSignedCert } from '../peers/harness.js';

export const USERS = { nancy: 'nancy-secret-1', bob: 'bob-secret-2' } as const;

export interface FixtureOptions {
  /** `next_hop` of every connector (smtp://, lmtp://, lmtp:/, maildir:). */
  readonly nextHop: string;
  /** YAML lines added under `identities:` (e.g. `  dovecot_auth: "unix:/…"`). */
  readonly identities?: string;
  /** Extra keys for the client connector (YAML flow entries, e.g. `message_rate_limit: 2`). */
  readonly client?: string;
  readonly listener?: SubmissionOptions;
  /** Leave the configured users without passwords (for Dovecot-only tests). */
  readonly noPasswords?: boolean;
  /** Ready `{SCHEME}hash` strings instead of the bcrypt ones made here (e.g. from `doveadm pw`). */
  readonly hashes?: Partial<Record<keyof typeof USERS, string>>;
}

export interface Fixture {
  readonly dir: string;
  readonly ports: { readonly client: number; readonly smtps: number; readonly relay: number; readonly inbound: number };
  readonly engine: Engine;
  readonly listener: SubmissionListener;
  readonly ca: string;
  stop(): Promise<void>;
}

export async function startListener(o: FixtureOptions): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'mtap-listener-'));
  const cert = await makeSelfSignedCert(dir, { commonName: 'mail.test', keyType: 'ec' });
  const [client = 0, smtps = 0, relay = 0, inbound = 0] = await freePorts(4);
  const ports = { client, smtps, relay, inbound };
  const pw = (user: keyof typeof USERS): string => (o.noPasswords === true ? '' : `, password: "${o.hashes?.[user] ?? `{BLF-CRYPT}${hashSync(USERS[user], 4)}`}"`);
  const yaml = `
server:
  fqdn: mail.test
  dialect: rfc
  tls: { cert: ${cert.cert}, key: ${cert.key} }
  next_hop: "${o.nextHop}"
accepted_domains:
  - { domain: example.test, type: authoritative }
identities:
  unlisted_logins: authenticated
${o.identities ?? ''}
  users:
    - { name: nancy, addresses: [nancy@example.test]${pw('nancy')} }
    - { name: bob, addresses: [bob@example.test]${pw('bob')} }
connectors:
  - { name: Client, usage: client, bindings: ["127.0.0.1:${ports.client}"], basic_auth_mechanisms: [PLAIN, LOGIN], max_message_size: 64KB, max_recipients_per_message: 3, max_logon_failures: 2${o.client === undefined ? '' : `, ${o.client}`} }
  - { name: Smtps, usage: client, bindings: ["127.0.0.1:${ports.smtps}"], implicit_tls: true, basic_auth_mechanisms: [PLAIN, LOGIN] }
  - name: Relay
    usage: custom
    bindings: ["127.0.0.1:${ports.relay}"]
    remote_ip_ranges: ["127.0.0.0/8"]
    permission_groups: [AnonymousUsers]
    extended_rights:
      - { principal: anonymous, allow: [Ms-Exch-SMTP-Accept-Any-Recipient] }
  - { name: Inbound, usage: internet, bindings: ["127.0.0.1:${ports.inbound}"] }
`;
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  const logger = { info: () => undefined, warn: () => undefined, error: (obj: object) => (process.env['MTAP_DEBUG'] === undefined ? undefined : console.error(JSON.stringify(obj))) };
  const engine = await Engine.create({ config: parseConfig(yaml, file), logger });
  const listener = await startSubmission(engine, { authFailureDelayMs: 50, ...o.listener });
  return {
    dir,
    ports,
    engine,
    listener,
    ca: cert.cert,
    async stop() {
      await listener.close(2_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An RFC 5322 message with CRLF line ends. */
export function message(opts: { from: string; to: string; id: string; subject?: string; extraHeaders?: readonly string[]; body?: string }): string {
  return [
    `From: <${opts.from}>`,
    `To: <${opts.to}>`,
    `Subject: ${opts.subject ?? 'test'}`,
    `Message-ID: <${opts.id}>`,
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    ...(opts.extraHeaders ?? []),
    '',
    opts.body ?? 'Hello.',
    '',
  ].join('\r\n');
}

/** One reply: code and the text lines after `NNN-`/`NNN `. */
export interface Reply {
  readonly code: number;
  readonly lines: readonly string[];
  /** The last line's text (the reply text; with its enhanced code). */
  readonly text: string;
}

/**
 * A raw SMTP client for exact transcripts, plaintext or TLS (STARTTLS upgrades the same object).
 * Reads are bounded by `timeoutMs`; `closed` resolves when the server ends the connection.
 */
export class RawClient {
  private buf = '';
  private waiter: (() => void) | null = null;
  private ended = false;
  readonly closed: Promise<void>;
  private markClosed: () => void = () => undefined;

  private constructor(private socket: net.Socket | tls.TLSSocket, private readonly timeoutMs: number) {
    this.closed = new Promise((r) => (this.markClosed = r));
    this.attach(socket);
  }

  static async connect(port: number, o: { implicitTls?: boolean; ca?: string; timeoutMs?: number } = {}): Promise<{ c: RawClient; greeting: Reply }> {
    const socket = o.implicitTls === true ? tls.connect({ port, host: '127.0.0.1', ca: o.ca === undefined ? undefined : readFileSync(o.ca), servername: 'mail.test' }) : net.connect({ port, host: '127.0.0.1' });
    await new Promise<void>((res, rej) => {
      socket.once(o.implicitTls === true ? 'secureConnect' : 'connect', () => res());
      socket.once('error', rej);
    });
    const c = new RawClient(socket, o.timeoutMs ?? 10_000);
    return { c, greeting: await c.read() };
  }

  private attach(s: net.Socket | tls.TLSSocket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.markClosed();
      this.wake();
    };
    s.on('end', end);
    s.on('close', end);
    s.on('error', end);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async read(): Promise<Reply> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl < 0) break;
        const line = this.buf.slice(pos, nl);
        pos = nl + 2;
        lines.push(line);
        if (line[3] !== '-') {
          this.buf = this.buf.slice(pos);
          const texts = lines.map((l) => l.slice(4));
          return { code: Number(line.slice(0, 3)), lines: texts, text: texts[texts.length - 1] ?? '' };
        }
      }
      if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf)}`);
      if (Date.now() > deadline) throw new Error(`no reply within ${this.timeoutMs} ms; unread: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiter = () => (clearTimeout(t), r());
      });
    }
  }

  write(raw: string): void {
    this.socket.write(raw, 'latin1');
  }

  async cmd(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  /** STARTTLS, then the handshake on the same connection (`raw`: extra bytes sent with the command). */
  async starttls(ca: string, raw = ''): Promise<Reply> {
    this.write(`STARTTLS\r\n${raw}`);
    const r = await this.read();
    if (r.code !== 220) return r;
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('end');
    plain.removeAllListeners('close');
    const secure = tls.connect({ socket: plain, ca: readFileSync(ca), servername: 'mail.test' });
    await new Promise<void>((res, rej) => {
      secure.once('secureConnect', () => res());
      secure.once('error', rej);
    });
    this.socket = secure;
    this.attach(secure);
    return r;
  }

  /** Authenticates with AUTH PLAIN (initial response). */
  authPlain(user: string, password: string): Promise<Reply> {
    return this.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
  }

  /** DATA, the message (already CRLF and dot-stuffed as given), the final dot. */
  async data(msg: string): Promise<Reply> {
    const go = await this.cmd('DATA');
    if (go.code !== 354) return go;
    this.write(`${msg}${msg.endsWith('\r\n') ? '' : '\r\n'}.\r\n`);
    return this.read();
  }

  get tls(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
