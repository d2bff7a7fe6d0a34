/**
 * Dovecot auth client (Dovecot `doc/auth-protocol.txt` v1.1 and
 * `docs/developers/design/auth_protocol.md` v1.3): one persistent connection to the auth-client
 * socket, requests multiplexed by id (replies arrive out of order), reconnecting lazily after a
 * failure. Anything short of a clear OK or FAIL — Dovecot down, slow, or speaking garbage — is a
 * `tempfail`, which the listener answers 454 4.7.0 (never 535, never 235).
 *
 * Passwords and AUTH payloads are never logged, never put in errors or results.
 */
import net from 'node:net';
import { MAX_PASSWORD_BYTES } from './passwords.js';

/** Where Dovecot listens: `unix:/path` or `inet:HOST:PORT` (`inet:[::1]:PORT` for IPv6). */
export type DovecotAuthAddress = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'inet'; readonly host: string; readonly port: number };

/** Parses the `identities.dovecot_auth` string. Total: a bad string is `{ kind: 'invalid' }`. */
export function parseDovecotAuthAddress(text: string): DovecotAuthAddress | { readonly kind: 'invalid'; readonly message: string } {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    return path === '' ? { kind: 'invalid', message: 'unix: needs a socket path' } : { kind: 'unix', path };
  }
  const m = /^inet:(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (m !== null) {
    const port = Number(m[3]);
    const host = m[1] ?? m[2] ?? '';
    if (port < 1 || port > 65535) return { kind: 'invalid', message: `port ${m[3]} is out of range` };
    if (m[1] !== undefined && net.isIPv6(host) === false) return { kind: 'invalid', message: `[${host}] is not an IPv6 address` };
    return { kind: 'inet', host, port };
  }
  return { kind: 'invalid', message: 'expected "unix:/path/to/auth-client" or "inet:HOST:PORT"' };
}

/** One SMTP AUTH to check. Addresses are the client's and ours, as the listener saw them. */
export interface DovecotAuthRequest {
  /** The authentication identity (SASL authcid). */
  readonly username: string;
  readonly password: string;
  /** SASL authzid (act as this user), if the client sent one. */
  readonly authzid?: string;
  /** Client IP: Dovecot's per-IP failure penalty needs it (Dovecot auth-protocol.txt: always send rip). */
  readonly remoteIp: string;
  readonly remotePort?: number;
  readonly localIp?: string;
  readonly localPort?: number;
  /** The SMTP session is on TLS. */
  readonly secured: boolean;
  /** The client presented a certificate that verified. */
  readonly validClientCert?: boolean;
  /** The listener's session id, for correlating Dovecot's log with ours. */
  readonly session?: string;
}

/** The outcome. `reason` comes from Dovecot (`reason=`), meant to be shown to the user. */
export type DovecotAuthResult =
  | { readonly result: 'success'; readonly user: string }
  | { readonly result: 'failure'; readonly reason?: string }
  | { readonly result: 'tempfail'; readonly reason: string };

export interface DovecotAuthOptions {
  readonly address: DovecotAuthAddress;
  /** SASL service name Dovecot's passdb sees (`%s`). Default `smtp`. */
  readonly service?: string;
  /** Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Dovecot must finish its handshake (… DONE) within this. Default 5 s. */
  readonly handshakeTimeoutMs?: number;
  /** Per request. Dovecot delays failures by up to ~15 s per client IP (auth penalty). Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** In-flight requests beyond this are tempfailed at once. Default 1000. */
  readonly maxPending?: number;
}

/** auth-client-interface.h: AUTH_CLIENT_MAX_LINE_LENGTH (v1.3: 16384). */
export const DOVECOT_AUTH_MAX_LINE = 16384;
/** RFC 4616 §2 lets identities reach 255 octets; we allow no more. */
const MAX_IDENTITY_BYTES = 255;

interface Pending {
  readonly mech: 'PLAIN' | 'LOGIN';
  readonly req: DovecotAuthRequest;
  conts: number;
  readonly done: (r: DovecotAuthResult) => void;
}

interface Connection {
  readonly socket: net.Socket;
  ready: boolean;
  mechs: Set<string>;
  buffer: string;
  readonly pending: Map<number, Pending>;
}

/** Dovecot 2.3 tab-escaping (str_tabescape): \001 is the escape character. */
function tabEscape(s: string): string {
  return s.replace(/[\x01\t\r\n]/g, (c) => ({ '\x01': '\x011', '\t': '\x01t', '\r': '\x01r', '\n': '\x01n' })[c] ?? '');
}
function tabUnescape(s: string): string {
  return s.replace(/\x01(.)/g, (_, c: string) => ({ '0': '\0', '1': '\x01', t: '\t', r: '\r', n: '\n' })[c] ?? c);
}

const tempfail = (reason: string): DovecotAuthResult => ({ result: 'tempfail', reason });

/**
 * A Dovecot auth client. Create one per configured socket and share it; it connects on first use.
 * `authenticate` never rejects.
 */
export class DovecotAuthClient {
  private readonly opts: Required<Omit<DovecotAuthOptions, 'address'>> & { address: DovecotAuthAddress };
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private nextId = 0;
  private closed = false;

  constructor(options: DovecotAuthOptions) {
    this.opts = {
      service: 'smtp',
      connectTimeoutMs: 5000,
      handshakeTimeoutMs: 5000,
      requestTimeoutMs: 30_000,
      maxPending: 1000,
      ...options,
    };
  }

  /** The mechanisms Dovecot announced on the current connection (empty before the first). */
  get mechanisms(): readonly string[] {
    return [...(this.conn?.mechs ?? [])];
  }

  /** Checks one login. Resolves `tempfail` for every failure that is not Dovecot's FAIL. */
  async authenticate(req: DovecotAuthRequest): Promise<DovecotAuthResult> {
    const bad = validate(req);
    if (bad !== undefined) return { result: 'failure', reason: bad };
    // The addresses come from our own sockets; a bad one is our bug, so not the user's failure.
    if (net.isIP(req.remoteIp) === 0 || (req.localIp !== undefined && net.isIP(req.localIp) === 0)) return tempfail('invalid client or local address');
    if (this.closed) return tempfail('auth client closed');
    let conn: Connection;
    try {
      conn = await this.connection();
    } catch (e) {
      return tempfail(e instanceof Error ? e.message : String(e));
    }
    if (conn.pending.size >= this.opts.maxPending) return tempfail('too many authentication requests in flight');
    // Only announced mechanisms: Dovecot drops the connection on any other (Dovecot auth-protocol.txt).
    const mech = conn.mechs.has('PLAIN') ? 'PLAIN' : conn.mechs.has('LOGIN') ? 'LOGIN' : undefined;
    if (mech === undefined) return tempfail(`Dovecot offers neither PLAIN nor LOGIN (${[...conn.mechs].join(' ')})`);
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const id = this.nextId;
    return new Promise<DovecotAuthResult>((resolve) => {
      const timer = setTimeout(() => finish(tempfail('Dovecot auth did not answer in time')), this.opts.requestTimeoutMs);
      const finish = (r: DovecotAuthResult): void => {
        if (conn.pending.get(id) !== entry) return;
        conn.pending.delete(id);
        clearTimeout(timer);
        resolve(r);
      };
      const entry: Pending = { mech, req, conts: 0, done: finish };
      conn.pending.set(id, entry);
      const params = [`service=${tabEscape(this.opts.service)}`, 'nologin', `rip=${req.remoteIp}`];
      if (req.localIp !== undefined) params.push(`lip=${req.localIp}`);
      if (req.remotePort !== undefined) params.push(`rport=${req.remotePort}`);
      if (req.localPort !== undefined) params.push(`lport=${req.localPort}`);
      if (req.secured) params.push('secured');
      if (req.validClientCert === true) params.push('valid-client-cert');
      if (req.session !== undefined) params.push(`session=${tabEscape(req.session)}`);
      // resp= must be the last parameter (auth-protocol: everything after it is ignored).
      if (mech === 'PLAIN') params.push(`resp=${b64(`${req.authzid ?? ''}\0${req.username}\0${req.password}`)}`);
      this.send(conn, `AUTH\t${id}\t${mech}\t${params.join('\t')}\n`);
    });
  }

  /** Closes the connection; in-flight requests become tempfail, later calls tempfail at once. */
  close(): void {
    this.closed = true;
    this.conn?.socket.destroy();
  }

  private send(conn: Connection, line: string): void {
    if (Buffer.byteLength(line) > DOVECOT_AUTH_MAX_LINE) {
      conn.socket.destroy(new Error('request line too long'));
      return;
    }
    conn.socket.write(line);
  }

  private connection(): Promise<Connection> {
    if (this.conn?.ready === true && !this.conn.socket.destroyed) return Promise.resolve(this.conn);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private open(): Promise<Connection> {
    const a = this.opts.address;
    const where = a.kind === 'unix' ? a.path : `${a.host}:${a.port}`;
    return new Promise<Connection>((resolve, reject) => {
      const socket = a.kind === 'unix' ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port });
      const conn: Connection = { socket, ready: false, mechs: new Set(), buffer: '', pending: new Map() };
      this.conn = conn;
      let settled = false;
      const fail = (why: string): void => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new Error(`Dovecot auth at ${where}: ${why}`));
        }
        socket.destroy();
      };
      let timer = setTimeout(() => fail('connect timed out'), this.opts.connectTimeoutMs);
      socket.setEncoding('utf8');
      socket.setNoDelay(true);
      socket.once('connect', () => {
        clearTimeout(timer);
        timer = setTimeout(() => fail('handshake timed out'), this.opts.handshakeTimeoutMs);
        socket.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
      });
      socket.on('data', (chunk: string) => {
        conn.buffer += chunk;
        let nl: number;
        while ((nl = conn.buffer.indexOf('\n')) >= 0) {
          const line = conn.buffer.slice(0, nl);
          conn.buffer = conn.buffer.slice(nl + 1);
          if (!conn.ready) {
            const r = this.handshakeLine(conn, line);
            if (r === 'done') {
              settled = true;
              clearTimeout(timer);
              resolve(conn);
            } else if (r !== 'more') return fail(r);
          } else this.replyLine(conn, line);
        }
        if (conn.buffer.length > DOVECOT_AUTH_MAX_LINE) fail('line too long');
      });
      socket.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      socket.on('close', () => {
        fail('connection closed');
        if (this.conn === conn) this.conn = undefined;
        for (const p of [...conn.pending.values()]) p.done(tempfail('connection to Dovecot auth lost'));
      });
    });
  }

  /** 'more', 'done', or why the handshake is unacceptable. */
  private handshakeLine(conn: Connection, line: string): 'more' | 'done' | string {
    const f = line.split('\t');
    switch (f[0]) {
      case 'VERSION':
        return f[1] === '1' ? 'more' : `unsupported protocol major version ${f[1] ?? ''}`;
      case 'MECH':
        if (f[1] !== undefined) conn.mechs.add(f[1].toUpperCase());
        return 'more';
      case 'DONE':
        conn.ready = true;
        return 'done';
      default:
        return 'more'; // SPID, CUID, COOKIE and anything newer: not needed for SASL
    }
  }

  private replyLine(conn: Connection, line: string): void {
    const f = line.split('\t');
    const p = conn.pending.get(Number(f[1]));
    if (p === undefined) return; // late reply to a timed-out request, or not a reply
    const params = new Map<string, string>();
    for (const kv of f.slice(2)) {
      const eq = kv.indexOf('=');
      params.set(eq < 0 ? kv : kv.slice(0, eq), eq < 0 ? '' : tabUnescape(kv.slice(eq + 1)));
    }
    const reason = params.get('reason');
    const withReason = reason === undefined || reason === '' ? {} : { reason };
    switch (f[0]) {
      case 'OK':
        // v1.3 "danger": an OK carrying nologin or proxy MUST be treated as FAIL.
        if (params.has('nologin') || params.has('proxy')) return p.done({ result: 'failure', ...withReason });
        return p.done({ result: 'success', user: params.get('user') || p.req.username });
      case 'FAIL': {
        const code = params.get('code');
        if (code === 'temp_fail' || params.has('temp')) return p.done(tempfail(reason || 'temporary authentication failure'));
        return p.done({ result: 'failure', ...withReason });
      }
      case 'CONT': {
        // LOGIN asks for the user name, then the password; PLAIN with resp= never continues.
        p.conts++;
        if (p.mech !== 'LOGIN' || p.conts > 2) return p.done(tempfail('unexpected continuation from Dovecot auth'));
        return this.send(conn, `CONT\t${f[1]}\t${b64(p.conts === 1 ? p.req.username : p.req.password)}\n`);
      }
      default:
        return p.done(tempfail('unexpected reply from Dovecot auth'));
    }
  }
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** Refusals that need no round trip; each is an ordinary failure (535), never a tempfail. */
function validate(r: DovecotAuthRequest): string | undefined {
  if (r.username === '' || r.password === '') return 'empty user name or password';
  if (/\0/.test(r.username + r.password + (r.authzid ?? ''))) return 'NUL in credentials';
  if (Buffer.byteLength(r.username) > MAX_IDENTITY_BYTES || Buffer.byteLength(r.authzid ?? '') > MAX_IDENTITY_BYTES) return 'identity too long';
  if (Buffer.byteLength(r.password) > MAX_PASSWORD_BYTES) return 'password too long';
  return undefined;
}
