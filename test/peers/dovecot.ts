/**
 * A private Dovecot: its own base_dir, state_dir, log and passwd-file under a run directory, an
 * auth-client socket (and optionally an inet auth listener) for SASL, and an LMTP listener
 * (unix socket and 127.0.0.1 port) delivering into per-user Maildirs. `dovecot -F` runs in the
 * foreground as a child of this process. Recipe: scripts/peers/README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN } from './bins.js';
import {
  freePorts, groupMembers, makeRunDir, PeerError, removeRunDir, retryPortRace, runCommand, runOk, sleep, spawnTracked, tail, waitFor, waitForListeners, type TrackedProcess,
} from './proc.js';
import type { TlsFiles } from './tls.js';

/** One passdb/userdb entry. Give `password` (hashed here with `doveadm pw -s <scheme>`) or a ready `hash`. */
export interface DovecotUser {
  /** The login, used verbatim (`username_format=%u`), e.g. `alice@example.test`. */
  readonly name: string;
  readonly password?: string;
  /** A `{SCHEME}…` string as `doveadm pw` prints it. */
  readonly hash?: string;
  /** passwd-file extra fields, e.g. `nologin=y reason=Disabled`. */
  readonly extraFields?: string;
}

/** Options for {@link startDovecot}. */
export interface DovecotOptions {
  readonly users: readonly DovecotUser[];
  /** Scheme for `password` entries. Default `SHA512-CRYPT`. */
  readonly scheme?: string;
  /** Default `['plain', 'login']`. */
  readonly mechanisms?: readonly string[];
  /** Also serve the auth-client protocol on a 127.0.0.1 port (`authPort`). */
  readonly authInet?: boolean;
  /** Run the LMTP service (unix socket + 127.0.0.1 port). Default true. */
  readonly lmtp?: boolean;
  /** `auth_failure_delay`, e.g. `0` or `3s`. Default: Dovecot's (2 s before each failure answer). */
  readonly authFailureDelay?: string;
  /** `ssl = yes` with this certificate (LMTP then offers STARTTLS). Default `ssl = no`. */
  readonly ssl?: TlsFiles;
  /** Appended to dovecot.conf verbatim (e.g. `auth_cache_size = 10M`). */
  readonly extraConf?: string;
}

/** A running private Dovecot. */
export interface DovecotInstance {
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** The master's pid (changes with {@link DovecotInstance.restart}). */
  readonly pid: number;
  /** The auth-client socket (Postfix `smtpd_sasl_path`, or a direct client). */
  readonly authSocket: string;
  readonly authPort: number | undefined;
  readonly lmtpSocket: string | undefined;
  readonly lmtpPort: number | undefined;
  /** `user`'s Maildir. */
  maildir(user: string): string;
  /** Messages in `user`'s INBOX (Maildir `new/` and `cur/`), oldest first. */
  messages(user: string): Promise<string[]>;
  waitForMessages(user: string, count?: number, timeoutMs?: number): Promise<string[]>;
  readLog(): string;
  /** Pids of the master's children whose command is `comm` (e.g. `auth`), to signal them in a test. */
  childPids(comm: string): number[];
  /** Stops the master and every child but keeps the run directory, for {@link DovecotInstance.restart}. */
  halt(): Promise<void>;
  /** Starts a halted instance again with the same configuration, sockets and ports. */
  restart(): Promise<void>;
  /** Stops everything and removes the run directory. */
  stop(): Promise<void>;
}

/** Mail is stored as nobody/nogroup (≥ first_valid_uid below; never root). */
const MAIL_UID = 65534;

/** Hashes `password` with Dovecot's own tool, so the scheme is exactly what Dovecot verifies. */
export async function dovecotHash(password: string, scheme = 'SHA512-CRYPT', args: readonly string[] = []): Promise<string> {
  // `args` are more `doveadm pw` options, e.g. `['-r', '12']` (rounds / cost).
  const r = await runCommand(BIN.doveadm, ['-O', 'pw', '-s', scheme, '-p', password, ...args], { timeoutMs: 20_000 });
  // The error names the scheme, never the password (it is on doveadm's command line only).
  if (r.code !== 0) throw new PeerError('PEER_COMMAND', `doveadm pw -s ${scheme} failed: ${r.stderr.trim().slice(0, 500)}`);
  return r.stdout.trim();
}

function conf(dir: string, o: DovecotOptions, authPort: number | undefined, lmtpPort: number | undefined): string {
  const lmtp = o.lmtp ?? true;
  const authInet = authPort === undefined ? '' : `  inet_listener {\n    address = 127.0.0.1\n    port = ${authPort}\n  }\n`;
  // Blocks must be multi-line and `listen` non-empty (Dovecot config pitfalls, scripts/peers/README.md).
  return `base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = mta-policy-${dir.slice(-6)}
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
protocols = ${lmtp ? 'lmtp' : ''}
listen = 127.0.0.1
${o.ssl === undefined ? 'ssl = no' : `ssl = yes\nssl_cert = <${o.ssl.cert}\nssl_key = <${o.ssl.key}`}
disable_plaintext_auth = no
auth_mechanisms = ${(o.mechanisms ?? ['plain', 'login']).join(' ')}
${o.authFailureDelay === undefined ? '' : `auth_failure_delay = ${o.authFailureDelay}\n`}first_valid_uid = ${MAIL_UID}
postmaster_address = postmaster@dovecot.test
hostname = lmtp.dovecot.test
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
  default_fields = uid=${MAIL_UID} gid=${MAIL_UID} home=${dir}/home/%u
}
service auth {
  unix_listener ${dir}/auth-client {
    mode = 0666
  }
${authInet}}
${lmtp ? `service lmtp {
  unix_listener ${dir}/lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort ?? 0}
  }
}
` : ''}${o.extraConf ?? ''}
`;
}

/** Starts a private Dovecot; retries with fresh ports when one was taken meanwhile. */
export const startDovecot = (opts: DovecotOptions): Promise<DovecotInstance> => retryPortRace(() => startOnce(opts));

async function startOnce(opts: DovecotOptions): Promise<DovecotInstance> {
  const dir = await makeRunDir('dovecot');
  let prepared: { configFile: string; authPort: number | undefined; lmtpPort: number | undefined };
  try {
    prepared = await prepare(dir, opts);
  } catch (err) {
    removeRunDir(dir);
    throw err;
  }
  const { configFile, authPort, lmtpPort } = prepared;
  const lmtp = opts.lmtp ?? true;
  const layout: Layout = {
    dir, configFile, logFile: join(dir, 'dovecot.log'), authSocket: join(dir, 'auth-client'), authPort,
    lmtpSocket: lmtp ? join(dir, 'lmtp') : undefined, lmtpPort,
  };
  let proc: TrackedProcess;
  try {
    proc = await launch(layout);
  } catch (err) {
    removeRunDir(dir);
    throw err;
  }
  return instance(layout, proc);
}

/** Where one instance's files and listeners are. */
interface Layout {
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly authSocket: string;
  readonly authPort: number | undefined;
  readonly lmtpSocket: string | undefined;
  readonly lmtpPort: number | undefined;
}

/** Runs `dovecot -F` on a prepared run directory and waits until every listener is up. */
async function launch(l: Layout): Promise<TrackedProcess> {
  const proc = spawnTracked(BIN.dovecot, ['-F', '-c', l.configFile], { runDir: l.dir, what: 'dovecot' });
  const out = join(l.dir, 'dovecot.out');
  try {
    const ports = [l.authPort, l.lmtpPort].filter((p): p is number => p !== undefined);
    await waitForListeners(proc, ports, { timeoutMs: 20_000, what: 'Dovecot', log: () => `${tail(out)}\n${tail(l.logFile)}` });
    await waitFor(() => existsSync(l.authSocket) && (l.lmtpSocket === undefined || existsSync(l.lmtpSocket)), {
      timeoutMs: 20_000, what: 'Dovecot unix listeners', detail: () => tail(l.logFile),
    });
  } catch (err) {
    await proc.stop('SIGTERM', 2_000);
    throw err;
  }
  return proc;
}

/** Members of `master`'s process group whose parent is `master` and whose command is `comm`. */
function childrenOf(master: number, comm: string): number[] {
  return groupMembers(master).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === master && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
    } catch {
      return false; // exited meanwhile
    }
  });
}

/** Directories, the passwd-file (hashing passwords), ports and dovecot.conf of a new instance. */
async function prepare(dir: string, opts: DovecotOptions): Promise<{ configFile: string; authPort: number | undefined; lmtpPort: number | undefined }> {
  for (const d of ['run', 'state']) await mkdir(join(dir, d));
  await mkdir(join(dir, 'home'));
  await runOk('chown', [`${MAIL_UID}:${MAIL_UID}`, join(dir, 'home')]);
  const lines: string[] = [];
  for (const u of opts.users) {
    if (/[:\n]/.test(u.name)) throw new PeerError('PEER_CONFIG', `Dovecot user name may not contain ':' or a newline: ${u.name}`);
    const hash = u.hash ?? (u.password === undefined ? undefined : await dovecotHash(u.password, opts.scheme));
    if (hash === undefined) throw new PeerError('PEER_CONFIG', `Dovecot user ${u.name} needs a password or a hash`);
    lines.push(`${u.name}:${hash}::::::${u.extraFields ?? ''}`);
  }
  await writeFile(join(dir, 'users'), lines.join('\n') + '\n', { mode: 0o644 });
  const [auth, lmtp] = await freePorts(2);
  const authPort = opts.authInet === true ? auth : undefined;
  const lmtpPort = (opts.lmtp ?? true) ? lmtp : undefined;
  const configFile = join(dir, 'dovecot.conf');
  await writeFile(configFile, conf(dir, opts, authPort, lmtpPort));
  return { configFile, authPort, lmtpPort };
}

async function inbox(maildir: string): Promise<string[]> {
  const files: string[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(maildir, sub);
    if (existsSync(d)) for (const n of await readdir(d)) files.push(join(d, n));
  }
  // Dovecot names Maildir files `<seconds>.M<microseconds>P<pid>.<host>…`: order by that time.
  const key = (f: string): number => {
    const m = /^(\d+)\.M(\d+)P/.exec(f.slice(f.lastIndexOf('/') + 1));
    return m === null ? 0 : Number(m[1]) * 1e6 + Number(m[2]);
  };
  files.sort((a, b) => key(a) - key(b));
  return Promise.all(files.map((f) => readFile(f, 'utf8')));
}

function instance(l: Layout, first: TrackedProcess): DovecotInstance {
  const { dir, configFile, logFile, authSocket, authPort, lmtpSocket, lmtpPort } = l;
  const maildir = (user: string): string => join(dir, 'home', user, 'Maildir');
  let proc: TrackedProcess | undefined = first;
  let pid = first.pid;
  let stopped = false;
  // The master exits without waiting for its children; they notice and close their connections
  // on their own. Give them a second to do so (clients then see an orderly close), then stop the
  // whole group: an auth process may keep serving its connected clients after the master is gone.
  const halt = async (): Promise<void> => {
    const p = proc;
    if (p === undefined) return;
    proc = undefined;
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      // exited meanwhile
    }
    await Promise.race([p.exited, sleep(10_000)]);
    await waitFor(() => groupMembers(p.pid).length === 0, { timeoutMs: 1_000, what: 'Dovecot children to exit' }).catch(() => undefined);
    await p.stop('SIGTERM', 0);
    // Let this process's own clients (a test's auth client) read the FIN/RST before halt() resolves,
    // so "halted" means their connections are seen closed, not merely dead on the Dovecot side.
    await sleep(100);
  };
  return {
    dir, configFile, logFile, authSocket, authPort, lmtpSocket, lmtpPort,
    get pid() {
      return pid;
    },
    maildir,
    messages: (user) => inbox(maildir(user)),
    waitForMessages: (user, count = 1, timeoutMs = 10_000) =>
      waitFor(async () => {
        const m = await inbox(maildir(user));
        return m.length >= count ? m : null;
      }, { timeoutMs, what: `${count} message(s) in ${user}'s Maildir`, detail: () => tail(logFile) }),
    readLog: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    childPids: (comm) => (proc === undefined ? [] : childrenOf(proc.pid, comm)),
    halt,
    async restart() {
      if (stopped) throw new PeerError('PEER_USAGE', 'Dovecot was stopped; start a new instance');
      if (proc !== undefined) throw new PeerError('PEER_USAGE', 'Dovecot is running; halt() it first');
      proc = await launch(l);
      pid = proc.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      removeRunDir(dir);
    },
  };
}
