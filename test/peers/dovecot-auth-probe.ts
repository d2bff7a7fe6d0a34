/**
 * A minimal Dovecot auth-client (protocol v1.2, Dovecot auth-protocol.txt): handshake, then one AUTH
 * PLAIN. It proves a private Dovecot answers; it is not the project's client (that one lives in
 * the submission adapter and handles multiplexing, CONT, reconnects and timeouts properly).
 */
import { connect, type Socket } from 'node:net';
import { PeerError } from './proc.js';

/** What the server said: its handshake lines (up to DONE) and the reply line to our AUTH. */
export interface AuthProbeResult {
  readonly handshake: readonly string[];
  /** The server's MECH names. */
  readonly mechanisms: readonly string[];
  /** `OK`, `FAIL` or `CONT`. */
  readonly verdict: string;
  /** The reply's fields after the id, e.g. `['user=alice@example.test']`. */
  readonly params: readonly string[];
}

/** Connects to `target` (a unix socket path, or a 127.0.0.1 port) and tries `user`/`password` with PLAIN. */
export async function probeDovecotAuth(
  target: string | number, user: string, password: string, opts: { timeoutMs?: number; noPenalty?: boolean } = {},
): Promise<AuthProbeResult> {
  const socket: Socket = typeof target === 'number' ? connect({ port: target, host: '127.0.0.1' }) : connect({ path: target });
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  socket.setEncoding('utf8');
  socket.on('data', (s: string) => {
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake?.();
  });
  socket.on('error', (e) => { failure = e; wake?.(); });
  socket.on('close', () => { failure ??= new PeerError('PEER_AUTH_EOF', `auth server closed the connection after: ${lines.join(' | ')}`); wake?.(); });
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const next = async (pred: (l: string) => boolean): Promise<string> => {
    for (;;) {
      const i = lines.findIndex(pred);
      if (i >= 0) return lines.splice(i, 1)[0] ?? '';
      if (failure !== null) throw failure;
      const left = deadline - Date.now();
      if (left <= 0) throw new PeerError('PEER_TIMEOUT', `no expected auth reply; got: ${lines.join(' | ')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        wake = () => { clearTimeout(t); wake = null; r(); };
      });
    }
  };
  try {
    socket.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
    const handshake: string[] = [];
    for (;;) {
      const l = await next(() => true);
      handshake.push(l);
      if (l === 'DONE') break;
    }
    const resp = Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
    const flags = opts.noPenalty === false ? '' : '\tno-penalty';
    socket.write(`AUTH\t1\tPLAIN\tservice=smtp${flags}\tlip=127.0.0.1\trip=127.0.0.1\tresp=${resp}\n`);
    const reply = (await next((l) => /^(OK|FAIL|CONT)\t1(\t|$)/.test(l))).split('\t');
    return {
      handshake,
      mechanisms: handshake.filter((l) => l.startsWith('MECH\t')).map((l) => l.split('\t')[1] ?? ''),
      verdict: reply[0] ?? '',
      params: reply.slice(2),
    };
  } finally {
    socket.destroy();
  }
}
