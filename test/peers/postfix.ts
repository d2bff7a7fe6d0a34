/**
 * A private Postfix instance: its own config dir, queue, data dir and maillog under a run
 * directory, smtpd listeners on free 127.0.0.1 ports, and `master` run in the foreground as a
 * child of this process (never `postfix start`, which would daemonize). Other Postfix instances
 * on the host, including the system one, are not touched: every command gets `-c <our dir>`.
 * Recipe: scripts/peers/README.md.
 */
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN } from './bins.js';
import {
  freePorts, makeRunDir, PeerError, removeRunDir, retryPortRace, runOk, spawnTracked, tail, waitFor, waitForListeners, type TrackedProcess,
} from './proc.js';
import { makeSelfSignedCert, type TlsFiles } from './tls.js';

/** Where Postfix hands accepted mail. */
export type PostfixDelivery =
  | { readonly kind: 'discard' }
  /** `smtp:[host]:port` for every recipient, e.g. to an smtp-sink (tools.ts) or the next hop under test. */
  | { readonly kind: 'relay'; readonly port: number; readonly host?: string }
  /** virtual(8) into one Maildir, `<dir>/mail/all/`, for every recipient (read with {@link PostfixInstance.mail}). */
  | { readonly kind: 'maildir' };

/** Options for {@link startPostfix}. Every value is written literally into main.cf / master.cf. */
export interface PostfixOptions {
  /** main.cf parameters, written after (and so overriding) the harness defaults listed in README. */
  readonly main?: Readonly<Record<string, string>>;
  /** `-o` overrides for the main smtpd listener (`ports.smtp`); values may hold spaces and commas. */
  readonly smtpd?: Readonly<Record<string, string>>;
  /**
   * More smtpd listeners, each on its own free port (`ports[name]`), e.g.
   * `{ submission: { smtpd_tls_security_level: 'encrypt', smtpd_sasl_auth_enable: 'yes' } }`.
   */
  readonly services?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Raw master.cf lines appended at the end. */
  readonly masterLines?: readonly string[];
  /** Default `{ kind: 'discard' }`. */
  readonly delivery?: PostfixDelivery;
  /** STARTTLS offered (`smtpd_tls_security_level = may`): `true` makes a self-signed RSA cert. */
  readonly tls?: boolean | TlsFiles;
  /** SASL through Dovecot: its auth-client socket path (or `inet:127.0.0.1:PORT`). Enable per listener with `smtpd_sasl_auth_enable`. */
  readonly dovecotSasl?: string;
  /** myhostname; default `mx.postfix.test`. */
  readonly hostname?: string;
  /** Bound on start-up (ms); default 20 000. */
  readonly startTimeoutMs?: number;
}

/** A running private Postfix. */
export interface PostfixInstance {
  readonly dir: string;
  readonly configDir: string;
  readonly maillog: string;
  readonly host: '127.0.0.1';
  /** The main smtpd listener's port (`ports.smtp`). */
  readonly port: number;
  /** Every smtpd listener's port by service name (`smtp` plus {@link PostfixOptions.services}). */
  readonly ports: Readonly<Record<string, number>>;
  readonly tls: TlsFiles | undefined;
  /** The master daemon's pid (leader of the instance's process group). */
  readonly pid: number;
  readMaillog(): string;
  /** The maillog's current length: pass it to {@link waitForLog} to match only lines written later. */
  logOffset(): number;
  /** Waits for a maillog line matching `pattern` (after character `fromOffset`, default 0); returns it. */
  waitForLog(pattern: RegExp, timeoutMs?: number, fromOffset?: number): Promise<string>;
  /**
   * Messages delivered so far (delivery `maildir`), oldest first; with `recipient`, only those
   * whose `Delivered-To:` (added by virtual(8)) is that address.
   */
  mail(recipient?: string): Promise<string[]>;
  /** Waits until {@link mail} returns at least `count` messages; returns them. */
  waitForMail(recipient?: string, count?: number, timeoutMs?: number): Promise<string[]>;
  /** `postqueue -j`: the messages still queued. */
  queue(): Promise<Array<Record<string, unknown>>>;
  /** `postconf -c <dir> <args…>` (e.g. `-e 'x = y'`), then `postfix reload` when `reload`. */
  postconf(args: readonly string[], reload?: boolean): Promise<string>;
  /** Stops exactly this instance (SIGTERM to its master, then its process group) and removes its directory. */
  stop(): Promise<void>;
}

/** The standard internal services, with chroot `n` (Debian's defaults otherwise). */
const INTERNAL_SERVICES = `
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/** uid/gid virtual(8) delivers as (nobody/nogroup): any uid ≥ virtual_minimum_uid works. */
const MAILDIR_UID = 65534;

function mainCf(dir: string, opts: PostfixOptions, tls: TlsFiles | undefined): string {
  const d = opts.delivery ?? { kind: 'discard' };
  const transport = d.kind === 'discard' ? 'discard:' : d.kind === 'maildir' ? 'virtual:' : `smtp:[${d.host ?? '127.0.0.1'}]:${d.port}`;
  const base: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: `${dir}/spool`,
    data_directory: `${dir}/data`,
    command_directory: '/usr/sbin',
    daemon_directory: '/usr/lib/postfix/sbin',
    meta_directory: '/etc/postfix',
    shlib_directory: '/usr/lib/postfix',
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: opts.hostname ?? 'mx.postfix.test',
    mydomain: 'postfix.test',
    myorigin: '$myhostname',
    mydestination: '',
    relay_domains: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    // maillog_file_prefixes must cover maillog_file, or postfix(1) exits 1 without a word (§7.1).
    maillog_file: `${dir}/maillog`,
    maillog_file_prefixes: dir,
    default_transport: transport,
    relay_transport: transport,
    // Tests: refusals answer at once; deferred mail is retried within seconds; no inflow throttle.
    smtpd_error_sleep_time: '0s',
    in_flow_delay: '0s',
    queue_run_delay: '1s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '2s',
    smtp_host_lookup: 'native',
    smtp_connect_timeout: '5s',
  };
  if (d.kind === 'maildir') {
    Object.assign(base, {
      virtual_mailbox_base: `${dir}/mail`,
      // One Maildir for all: virtual(8) refuses regexp substitutions ($1) in mailbox paths.
      virtual_mailbox_maps: 'static:all/',
      virtual_uid_maps: `static:${MAILDIR_UID}`,
      virtual_gid_maps: `static:${MAILDIR_UID}`,
    });
  }
  if (tls !== undefined) {
    Object.assign(base, { smtpd_tls_cert_file: tls.cert, smtpd_tls_key_file: tls.key, smtpd_tls_security_level: 'may' });
  }
  if (opts.dovecotSasl !== undefined) Object.assign(base, { smtpd_sasl_type: 'dovecot', smtpd_sasl_path: opts.dovecotSasl });
  const all = { ...base, ...opts.main };
  return Object.entries(all).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

function smtpdLine(port: number, overrides: Readonly<Record<string, string>> | undefined): string {
  const o = Object.entries(overrides ?? {}).map(([k, v]) => {
    if (/[{}\n]/.test(v)) throw new PeerError('PEER_CONFIG', `master.cf -o ${k}: braces and newlines cannot be passed; set it in main.cf and use $name`);
    // Postfix ≥ 3.0 master.cf syntax `-o { name = value }` allows spaces and commas in value.
    return /[\s,]/.test(v) ? `\n  -o { ${k} = ${v} }` : `\n  -o ${k}=${v}`;
  });
  return `127.0.0.1:${port} inet n - n - - smtpd${o.join('')}`;
}

/**
 * Postfix re-reads a configuration file, 300 ms apart, until its mtime is a few seconds old (it
 * guards against reading a file mid-edit): ~2 s per command on a file written just now. The
 * harness writes whole files, so it dates them back.
 */
async function backdate(configDir: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  for (const f of await readdir(configDir)) await utimes(join(configDir, f), past, past);
}

async function maildirMessages(root: string, recipient: string | undefined): Promise<string[]> {
  const newDir = join(root, 'new');
  if (!existsSync(newDir)) return [];
  // virtual(8) names files <seconds>.<queue id and more>: in delivery order to the second.
  const names = (await readdir(newDir)).sort((a, b) => Number(a.split('.')[0]) - Number(b.split('.')[0]));
  const all = await Promise.all(names.map((n) => readFile(join(newDir, n), 'utf8')));
  if (recipient === undefined) return all;
  const mine = new RegExp(`^Delivered-To: ${recipient.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'im');
  return all.filter((m) => mine.test(m.slice(0, Math.max(0, m.indexOf('\n\n')))));
}

/** Starts a private Postfix; retries with fresh ports when a port was taken meanwhile. */
export const startPostfix = (opts: PostfixOptions = {}): Promise<PostfixInstance> => retryPortRace(() => startOnce(opts));

async function startOnce(opts: PostfixOptions): Promise<PostfixInstance> {
  const dir = await makeRunDir('postfix');
  const configDir = join(dir, 'etc');
  const maillog = join(dir, 'maillog');
  const env = { ...process.env, MAIL_CONFIG: configDir };
  let ports: Record<string, number>;
  let tls: TlsFiles | undefined;
  try {
    ({ ports, tls } = await prepare(dir, configDir, opts));
    // What `postfix start` would do first, minus the daemonizing: create the queue directories.
    await runOk(BIN.postInstall, [`config_directory=${configDir}`, 'meta_directory=/etc/postfix', 'create-missing'], { env, timeoutMs: 30_000 });
  } catch (err) {
    removeRunDir(dir);
    throw err;
  }
  const proc = spawnTracked(BIN.postfixMaster, ['-c', configDir, '-s'], { runDir: dir, what: 'postfix-master', env });
  try {
    await waitForListeners(proc, Object.values(ports), {
      timeoutMs: opts.startTimeoutMs ?? 20_000, what: 'Postfix master', log: () => tail(maillog, 30),
    });
  } catch (err) {
    await proc.stop('SIGTERM', 2_000);
    removeRunDir(dir);
    throw err;
  }
  return instance(dir, configDir, maillog, ports, tls, proc, env);
}

/** Directories, certificate, ports, main.cf and master.cf of a new instance. */
async function prepare(dir: string, configDir: string, opts: PostfixOptions): Promise<{ ports: Record<string, number>; tls: TlsFiles | undefined }> {
  await mkdir(configDir);
  await mkdir(join(dir, 'spool'));
  await mkdir(join(dir, 'data'));
  await runOk('chown', ['postfix', join(dir, 'data')]); // master opens data/master.lock as mail_owner
  if (opts.delivery?.kind === 'maildir') {
    await mkdir(join(dir, 'mail'));
    await runOk('chown', [`${MAILDIR_UID}:${MAILDIR_UID}`, join(dir, 'mail')]);
  }
  const tls = opts.tls === true ? await makeSelfSignedCert(dir, { commonName: opts.hostname ?? 'mx.postfix.test' }) : opts.tls || undefined;
  const names = ['smtp', ...Object.keys(opts.services ?? {})];
  const free = await freePorts(names.length);
  const ports: Record<string, number> = Object.fromEntries(names.map((name, i) => [name, free[i] ?? 0]));
  const master = [smtpdLine(ports['smtp'] ?? 0, opts.smtpd)];
  for (const [name, o] of Object.entries(opts.services ?? {})) master.push(smtpdLine(ports[name] ?? 0, o));
  await writeFile(join(configDir, 'main.cf'), mainCf(dir, opts, tls));
  await writeFile(join(configDir, 'master.cf'), `${master.join('\n')}\n${INTERNAL_SERVICES}${(opts.masterLines ?? []).join('\n')}\n`);
  await backdate(configDir);
  return { ports, tls };
}

function instance(
  dir: string, configDir: string, maillog: string, ports: Record<string, number>, tls: TlsFiles | undefined,
  proc: TrackedProcess, env: NodeJS.ProcessEnv,
): PostfixInstance {
  const readMaillog = (): string => (existsSync(maillog) ? readFileSync(maillog, 'utf8') : '');
  const mailRoot = join(dir, 'mail', 'all');
  let stopped = false;
  return {
    dir, configDir, maillog, tls, ports, host: '127.0.0.1', port: ports['smtp'] ?? 0, pid: proc.pid,
    readMaillog,
    logOffset: () => readMaillog().length,
    waitForLog: (pattern, timeoutMs = 10_000, fromOffset = 0) =>
      waitFor(() => readMaillog().slice(fromOffset).split('\n').find((l) => pattern.test(l)), {
        timeoutMs, what: `maillog line ${pattern}`, detail: () => tail(maillog, 30),
      }),
    mail: (rcpt) => maildirMessages(mailRoot, rcpt),
    waitForMail: async (rcpt, count = 1, timeoutMs = 10_000) =>
      waitFor(async () => {
        const m = await maildirMessages(mailRoot, rcpt);
        return m.length >= count ? m : null;
      }, { timeoutMs, what: `${count} message(s) for ${rcpt ?? 'anyone'}`, detail: () => tail(maillog, 30) }),
    async queue() {
      const r = await runOk(BIN.postqueue, ['-c', configDir, '-j'], { env, timeoutMs: 10_000 });
      return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async postconf(args, reload = false) {
      const r = await runOk(BIN.postconf, ['-c', configDir, ...args], { env, timeoutMs: 10_000 });
      await backdate(configDir);
      if (reload) await runOk(BIN.postfix, ['-c', configDir, 'reload'], { env, timeoutMs: 10_000 });
      return r.stdout;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc.stop('SIGTERM', 10_000);
      removeRunDir(dir);
    },
  };
}

/** Runs `fn` on a fresh instance and always stops it. */
export async function withPostfix<T>(opts: PostfixOptions, fn: (pf: PostfixInstance) => Promise<T>): Promise<T> {
  const pf = await startPostfix(opts);
  try {
    return await fn(pf);
  } finally {
    await pf.stop();
  }
}
