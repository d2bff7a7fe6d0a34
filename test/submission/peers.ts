/**
 * Real peers for the submission back-end tests: a private Dovecot (auth + LMTP) and Postfix's
 * smtp-sink, each started under a fresh temp dir on loopback ports and stopped by pid.
 * Kept small on purpose; a shared peers harness may replace it.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync, chownSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

const isRoot = process.getuid?.() === 0;

/** `doveadm pw` output for `scheme` (with its `{SCHEME}` prefix). */
export function doveadmPw(scheme: string, password: string, args: string[] = []): string {
  return execFileSync('doveadm', ['-c', '/dev/null', 'pw', '-s', scheme, '-p', password, ...args], { encoding: 'utf8' }).trim();
}

/** A temp dir other users (Dovecot's, smtp-sink's) can enter. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `mtap-${prefix}-`));
  chmodSync(d, 0o755);
  return d;
}

/** A free loopback TCP port (bound, read, released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function canConnect(opts: net.NetConnectOpts): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect(opts);
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** Pids of `parent`'s children (named `comm`, if given). */
function listChildren(parent: number | undefined, comm?: string): number[] {
  if (parent === undefined) return [];
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(parent)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when nothing matches
  }
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] !== '' && (comm === undefined || f[1] === comm))
    .map((f) => Number(f[0]));
}

export interface DovecotUser {
  readonly name: string;
  /** A `{SCHEME}` hash; default: SHA512-CRYPT of `password`. */
  readonly hash?: string;
  readonly password?: string;
  /** passwd-file extra fields, e.g. `nologin=y reason=Disabled`. */
  readonly extra?: string;
}

export interface Dovecot {
  readonly dir: string;
  readonly authSocket: string;
  readonly authPort: number;
  readonly lmtpSocket: string;
  readonly lmtpPort: number;
  /** Maildir of a user (Dovecot's `mail_location`). */
  mailDir(user: string): string;
  /** The master's pid (Dovecot runs in the foreground, -F). */
  pid(): number | undefined;
  /** Pids of the master's children running `comm` (e.g. `auth`). */
  childPids(comm: string): number[];
  /** Stops the master (and with it every Dovecot child) by pid. */
  stop(): Promise<void>;
  /** Starts it again on the same sockets and ports. */
  start(): Promise<void>;
  /** stop() and remove the temp dir. */
  dispose(): Promise<void>;
}

/** A private Dovecot: passwd-file passdb/userdb, auth-client on a unix socket and 127.0.0.1, LMTP on both. */
export async function startDovecot(
  users: readonly DovecotUser[],
  opts: { ssl?: { cert: string; key: string }; mechanisms?: string; failureDelay?: string } = {},
): Promise<Dovecot> {
  const dir = tempDir('dovecot');
  const [authPort, lmtpPort] = [await freePort(), await freePort()];
  const svcUser = isRoot ? 'dovecot' : userInfo().username;
  const loginUser = isRoot ? 'dovenull' : userInfo().username;
  for (const d of ['run', 'state', 'mail']) mkdirSync(join(dir, d));
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', svcUser], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', svcUser], { encoding: 'utf8' }));
    chownSync(join(dir, 'mail'), uid, gid);
  }
  const lines = users.map((u) => `${u.name}:${u.hash ?? doveadmPw('SHA512-CRYPT', u.password ?? '')}::::::${u.extra ?? ''}`);
  writeFileSync(join(dir, 'users'), lines.join('\n') + '\n', { mode: 0o644 });
  const ssl = opts.ssl === undefined ? 'ssl = no' : `ssl = yes\nssl_cert = <${opts.ssl.cert}\nssl_key = <${opts.ssl.key}`;
  const conf = `
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = mtap-${authPort}
log_path = ${dir}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
${ssl}
default_internal_user = ${svcUser}
default_internal_group = ${svcUser}
default_login_user = ${loginUser}
disable_plaintext_auth = no
auth_mechanisms = ${opts.mechanisms ?? 'plain login'}
# Dovecot delays every failure by 2 s by default; the tests ask for it where they need it.
auth_failure_delay = ${opts.failureDelay ?? '0'}
first_valid_uid = 1
mail_location = maildir:${dir}/mail/%u
passdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
  default_fields = uid=${svcUser} gid=${svcUser} home=${dir}/mail/%u
}
service auth {
  unix_listener auth-client {
    path = ${dir}/auth-client
    mode = 0666
  }
  inet_listener {
    address = 127.0.0.1
    port = ${authPort}
  }
}
service lmtp {
  unix_listener lmtp {
    path = ${dir}/lmtp
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
service anvil {
  chroot =
}
`;
  writeFileSync(join(dir, 'dovecot.conf'), conf);
  let child: ChildProcess | undefined;
  const d: Dovecot = {
    dir,
    authSocket: join(dir, 'auth-client'),
    authPort,
    lmtpSocket: join(dir, 'lmtp'),
    lmtpPort,
    mailDir: (user) => join(dir, 'mail', user),
    pid: () => child?.pid,
    childPids: (comm) => listChildren(child?.pid, comm),
    async start() {
      const c = spawn('dovecot', ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
      child = c;
      await until('Dovecot to listen', async () => {
        if (c.exitCode !== null) throw new Error(`dovecot exited ${c.exitCode}: ${stderr}`);
        return (
          existsSync(d.authSocket) &&
          (await canConnect({ host: '127.0.0.1', port: authPort })) &&
          (await canConnect({ host: '127.0.0.1', port: lmtpPort }))
        );
      });
    },
    async stop() {
      // The master exits without waiting for its children, and an auth process keeps serving the
      // clients still connected to it. So "stopped" means: master gone, then every child killed.
      const children = child === undefined ? [] : listChildren(child.pid);
      if (child !== undefined) await stopChild(child);
      child = undefined;
      const alive = (pid: number): boolean => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      await until('Dovecot children to exit', () => !children.some(alive), 1000).catch(async () => {
        for (const pid of children.filter(alive)) process.kill(pid, 'SIGKILL');
        await until('Dovecot children to die', () => !children.some(alive), 5000);
      });
    },
    async dispose() {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await d.start();
  return d;
}

export interface SmtpSink {
  readonly port: number;
  readonly dumpDir: string;
  /** The process, for killing it mid-transaction. */
  readonly child: ChildProcess;
  dispose(): Promise<void>;
}

/** Postfix's smtp-sink on 127.0.0.1 (see `man smtp-sink` for fault-injection flags). */
export async function startSmtpSink(args: readonly string[] = [], opts: { port?: number } = {}): Promise<SmtpSink> {
  const dumpDir = tempDir('sink');
  chmodSync(dumpDir, 0o777);
  const port = opts.port ?? (await freePort());
  const user = isRoot ? ['-u', 'nobody'] : [];
  const child = spawn('/usr/sbin/smtp-sink', [...user, '-d', `${dumpDir}/%M.`, ...args, `127.0.0.1:${port}`, '64'], { stdio: 'ignore' });
  await until('smtp-sink to listen', async () => {
    if (child.exitCode !== null) throw new Error(`smtp-sink exited ${child.exitCode}`);
    return canConnect({ host: '127.0.0.1', port });
  });
  return {
    port,
    dumpDir,
    child,
    async dispose() {
      await stopChild(child);
      rmSync(dumpDir, { recursive: true, force: true });
    },
  };
}

/** A self-signed certificate for `localhost`/127.0.0.1 made with openssl. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
  chmodSync(key, 0o644);
  return { cert, key };
}
