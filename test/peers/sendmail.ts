/**
 * Sendmail 8.17 from the Debian .debs unpacked into `.tools/sendmail-<version>/` (scripts/lib.sh
 * `ensure_sendmail`; Postfix stays the system MTA). A private `.cf` is built with m4 from a `.mc`
 * written here, and Sendmail runs inside `unshare -mu` with a private /etc/hosts, a resolv.conf
 * pointing at 127.0.0.1 and its own hostname: without that it hangs resolving its own name on a
 * machine without working DNS (scripts/peers/README.md). Mail is queued (`-odq`, inspect with
 * {@link SendmailInstance.queue}) or relayed to a smart host on 127.0.0.1.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, sendmailBinary, sendmailCfDir, sendmailRoot } from './bins.js';
import {
  freePort, makeRunDir, PeerError, removeRunDir, retryPortRace, runOk, spawnTracked, tail, waitFor, waitForListeners, type TrackedProcess,
} from './proc.js';
import { SmtpDialog, type SmtpReply } from './smtp-dialog.js';

/** Sendmail's milter macro stages (`confMILTER_MACROS_<STAGE>`). */
export type SendmailMacroStage = 'CONNECT' | 'HELO' | 'ENVFROM' | 'ENVRCPT' | 'DATA' | 'EOH' | 'EOM';

/**
 * Macros sent per stage unless overridden: Sendmail's defaults plus what connector selection,
 * TLS and AUTH facts need (`{daemon_addr}`/`{daemon_port}`, client address/port, `{verify}`…).
 */
export const SENDMAIL_MILTER_MACROS: Readonly<Record<SendmailMacroStage, readonly string[]>> = {
  CONNECT: ['j', '_', '{daemon_name}', '{daemon_addr}', '{daemon_port}', '{daemon_flags}', '{client_addr}', '{client_port}',
    '{client_name}', '{client_ptr}', '{client_resolve}', '{if_name}', '{if_addr}'],
  HELO: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}', '{verify}'],
  ENVFROM: ['i', '{auth_type}', '{auth_authen}', '{auth_ssf}', '{auth_author}', '{mail_mailer}', '{mail_host}', '{mail_addr}'],
  ENVRCPT: ['{rcpt_mailer}', '{rcpt_host}', '{rcpt_addr}'],
  DATA: [],
  EOH: [],
  EOM: ['{msg_id}', 'i'],
};

/** Options for {@link startSendmail}. */
export interface SendmailOptions {
  /** INPUT_MAIL_FILTER: `socket` in Sendmail's syntax, `inet:PORT@127.0.0.1` or `unix:/path`. */
  readonly milter?: {
    readonly socket: string;
    /** Filter name. Default `mta-policy`. */
    readonly name?: string;
    /** `F=` flags: `T` tempfail (default) or `R` reject when the milter is unreachable; '' to continue. */
    readonly flags?: string;
    /** `T=` timeouts. Default `C:10s;S:10s;R:10s;E:1m`. */
    readonly timeouts?: string;
  };
  /** Replace the macro list of a stage (see {@link SENDMAIL_MILTER_MACROS}). */
  readonly macros?: Partial<Record<SendmailMacroStage, readonly string[]>>;
  /** Run a loopback daemon (`-bD`, `port`). Default true; `session()` (`-bs`) works either way. */
  readonly daemon?: boolean;
  /** Deliver to this smart host (`esmtp:[host]`, port via ESMTP_MAILER_ARGS) in the background; else queue only. */
  readonly relay?: { readonly port: number; readonly host?: string };
  /** FEATURE(promiscuous_relay): Sendmail relays anything, leaving refusals to the milter. Default true. */
  readonly promiscuousRelay?: boolean;
  /** More m4 lines, inserted before MAILER(). */
  readonly mcLines?: readonly string[];
  /** Default `mx.sendmail.test`. */
  readonly hostname?: string;
  /** Daemon debug flags (`-d<flags>`, e.g. `64.5` for milter), written to `<dir>/sendmail.out`. */
  readonly debug?: string;
}

/** One queued message, from its `qf` (control) and `df` (body) files. */
export interface SendmailQueued {
  readonly id: string;
  readonly sender: string;
  /** Final recipients (`R` lines, flags stripped). */
  readonly recipients: readonly string[];
  /** Header lines as they will be delivered, continuation lines joined with `\n`. */
  readonly headers: readonly string[];
  readonly body: string;
}

/** A private Sendmail configuration, with its daemon when `daemon` is set. */
export interface SendmailInstance {
  readonly dir: string;
  readonly cf: string;
  readonly host: '127.0.0.1';
  /** The daemon's port (0 without a daemon). */
  readonly port: number;
  readonly pid: number | undefined;
  /** One `sendmail -bs` session over stdio (CONNECT family is unknown/local). Close it with `dialog.close()`. */
  session(): Promise<{ dialog: SmtpDialog; greeting: SmtpReply }>;
  /** One TCP session with the daemon. */
  connect(): Promise<{ dialog: SmtpDialog; greeting: SmtpReply }>;
  /** Messages in the queue directory. */
  queue(): Promise<SendmailQueued[]>;
  waitForQueued(count?: number, timeoutMs?: number): Promise<SendmailQueued[]>;
  stop(): Promise<void>;
}

const q = (s: string): string => `\`${s}'`; // m4 quoting

function mc(dir: string, o: SendmailOptions, port: number, hostname: string): string {
  const def = (k: string, v: string): string => `define(${q(k)}, ${q(v)})dnl`;
  const lines = [
    'divert(0)dnl',
    `OSTYPE(${q('linux')})dnl`,
    def('QUEUE_DIR', `${dir}/queue`),
    def('MSP_QUEUE_DIR', `${dir}/msp-queue`),
    def('ALIAS_FILE', ''),
    def('confSTATUS_FILE', ''),
    def('confHELP_FILE', ''),
    def('confPID_FILE', `${dir}/sendmail.pid`),
    def('confDOMAIN_NAME', hostname),
    def('confDONT_PROBE_INTERFACES', 'True'),
    def('confDONT_BLAME_SENDMAIL', 'GroupWritableDirPathSafe'),
    def('confMILTER_LOG_LEVEL', '20'),
    def('confLOG_LEVEL', '9'),
    def('confTO_IDENT', '0s'),
  ];
  if (o.promiscuousRelay ?? true) lines.push(`FEATURE(${q('promiscuous_relay')})dnl`);
  lines.push(`FEATURE(${q('accept_unresolvable_domains')})dnl`, `FEATURE(${q('nocanonify')})dnl`, `FEATURE(${q('no_default_msa')})dnl`);
  lines.push(`DAEMON_OPTIONS(${q(`Port=${port}, Addr=127.0.0.1, Name=MTA`)})dnl`);
  if (o.relay !== undefined) {
    lines.push(def('SMART_HOST', `esmtp:[${o.relay.host ?? '127.0.0.1'}]`), def('ESMTP_MAILER_ARGS', `TCP $h ${o.relay.port}`));
  }
  if (o.milter !== undefined) {
    const m = o.milter;
    for (const stage of Object.keys(SENDMAIL_MILTER_MACROS) as SendmailMacroStage[]) {
      const list = o.macros?.[stage] ?? SENDMAIL_MILTER_MACROS[stage];
      if (list.length > 0) lines.push(def(`confMILTER_MACROS_${stage}`, list.join(', ')));
    }
    const spec = `S=${m.socket}, F=${m.flags ?? 'T'}, T=${m.timeouts ?? 'C:10s;S:10s;R:10s;E:1m'}`;
    lines.push(`INPUT_MAIL_FILTER(${q(m.name ?? 'mta-policy')}, ${q(spec)})dnl`);
  }
  lines.push(...(o.mcLines ?? []), `MAILER(${q('local')})dnl`, `MAILER(${q('smtp')})dnl`);
  return lines.join('\n') + '\n';
}

/** Builds the private configuration; starts the daemon unless `daemon: false`. */
export async function startSendmail(opts: SendmailOptions = {}): Promise<SendmailInstance> {
  const root = sendmailRoot();
  if (root === null || !existsSync(sendmailBinary(root))) {
    throw new PeerError('PEER_MISSING', 'Sendmail is not unpacked; run `bash scripts/peers/install.sh`');
  }
  return retryPortRace(() => startOnce(root, opts));
}

async function startOnce(root: string, opts: SendmailOptions): Promise<SendmailInstance> {
  const dir = await makeRunDir('sendmail');
  let prepared: { cf: string; script: string; port: number };
  try {
    prepared = await prepare(root, dir, opts);
  } catch (err) {
    removeRunDir(dir);
    throw err;
  }
  const { cf, script, port } = prepared;
  const mode = opts.relay === undefined ? '-odq' : '-odb';
  let proc: TrackedProcess | undefined;
  if (opts.daemon !== false) {
    const debug = opts.debug === undefined ? [] : [`-d${opts.debug}`];
    proc = spawnTracked(BIN.unshare, ['-mu', 'sh', script, mode, '-bD', ...debug], { runDir: dir, what: 'sendmail' });
    try {
      await waitForListeners(proc, [port], { timeoutMs: 20_000, what: 'Sendmail daemon', log: () => tail(join(dir, 'sendmail.out')) });
    } catch (err) {
      await proc.stop('SIGTERM', 2_000);
      removeRunDir(dir);
      throw err;
    }
  }
  return instance(dir, cf, script, port, mode, proc);
}

/** Queue directories, private hosts/resolv.conf, the .mc and the .cf built from it, the namespace script. */
async function prepare(root: string, dir: string, opts: SendmailOptions): Promise<{ cf: string; script: string; port: number }> {
  const hostname = opts.hostname ?? 'mx.sendmail.test';
  await mkdir(join(dir, 'queue'), { mode: 0o700 });
  await mkdir(join(dir, 'msp-queue'), { mode: 0o700 });
  await writeFile(join(dir, 'hosts'), `127.0.0.1 localhost ${hostname} ${hostname.split('.')[0] ?? hostname}\n::1 localhost\n`);
  // Nothing listens on 127.0.0.1:53, so every DNS query fails at once instead of timing out.
  await writeFile(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  const port = opts.daemon === false ? 0 : await freePort();
  await writeFile(join(dir, 'sendmail.mc'), mc(dir, opts, port, hostname));
  const cfDir = sendmailCfDir(root);
  const built = await runOk(BIN.m4, [`-D_CF_DIR_=${cfDir}/`, join(cfDir, 'm4/cf.m4'), join(dir, 'sendmail.mc')], { timeoutMs: 20_000 });
  const cf = join(dir, 'sendmail.cf');
  await writeFile(cf, built.stdout);
  const script = join(dir, 'run-sendmail.sh');
  // Runs as `unshare -mu sh run-sendmail.sh ARGS`: the bind mounts and hostname exist only inside
  // the new namespaces (util-linux makes the mounts private), and `exec` keeps the pid.
  const sh = (v: string): string => `'${v.replace(/'/g, `'\\''`)}'`;
  await writeFile(script, [
    'set -e',
    `${BIN.mount} --bind ${sh(join(dir, 'hosts'))} /etc/hosts`,
    `${BIN.mount} --bind ${sh(join(dir, 'resolv.conf'))} /etc/resolv.conf`,
    `hostname ${sh(hostname)}`,
    `exec ${sh(sendmailBinary(root))} -C ${sh(cf)} "$@"`,
  ].join('\n') + '\n');
  return { cf, script, port };
}

/** Parses a qf control file (Sendmail's queue format: one letter per record, TAB continues a line). */
export function parseQf(id: string, qf: string, body: string): SendmailQueued {
  const records: string[] = [];
  for (const line of qf.split('\n')) {
    if (line.startsWith('\t') && records.length > 0) records[records.length - 1] += `\n${line}`;
    else if (line !== '') records.push(line);
  }
  const sender = (records.find((r) => r.startsWith('S')) ?? 'S').slice(1).replace(/^<|>$/g, '');
  const recipients = records.filter((r) => r.startsWith('R')).map((r) => r.slice(1).replace(/^[A-Z]*:/, '').replace(/^<|>$/g, ''));
  // `H?flags?Name: value` — the optional ?…? part is a mailer-flag condition, not content.
  const headers = records.filter((r) => r.startsWith('H')).map((r) => r.slice(1).replace(/^\?[^?]*\?/, ''));
  return { id, sender, recipients, headers, body };
}

function instance(dir: string, cf: string, script: string, port: number, mode: string, proc: TrackedProcess | undefined): SendmailInstance {
  const queueDir = join(dir, 'queue');
  const queue = async (): Promise<SendmailQueued[]> => {
    const names = (await readdir(queueDir)).filter((n) => n.startsWith('qf')).sort();
    const out: SendmailQueued[] = [];
    for (const n of names) {
      const id = n.slice(2);
      // latin1: qf files hold macro references as raw 8-bit bytes (e.g. Return-Path: <\x81g>)
      const qf = await readFile(join(queueDir, n), 'latin1').catch(() => null);
      const df = await readFile(join(queueDir, `df${id}`), 'latin1').catch(() => '');
      if (qf !== null && qf.trimEnd().endsWith('.')) out.push(parseQf(id, qf, df)); // a complete qf ends with "."
    }
    return out;
  };
  const sessions = new Set<TrackedProcess>();
  let stopped = false;
  return {
    dir, cf, port, host: '127.0.0.1', pid: proc?.pid,
    async session() {
      const p = spawnTracked(BIN.unshare, ['-mu', 'sh', script, mode, '-bs'], { runDir: dir, what: 'sendmail-bs', pipe: true });
      sessions.add(p);
      const { stdin, stdout } = p.child;
      if (stdin === null || stdout === null) throw new PeerError('PEER_SPAWN', 'sendmail -bs without stdio pipes');
      const dialog = new SmtpDialog(stdout, stdin, 15_000, async () => {
        await Promise.race([p.exited, new Promise((r) => setTimeout(r, 3_000))]);
        await p.stop('SIGTERM', 2_000);
        sessions.delete(p);
      });
      return { dialog, greeting: await dialog.read() };
    },
    async connect() {
      if (port === 0) throw new PeerError('PEER_USAGE', 'this Sendmail was started with daemon: false');
      return SmtpDialog.connect(port);
    },
    queue,
    waitForQueued: (count = 1, timeoutMs = 10_000) =>
      waitFor(async () => {
        const m = await queue();
        return m.length >= count ? m : null;
      }, { timeoutMs, what: `${count} queued message(s) in ${queueDir}` }),
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of sessions) await s.stop('SIGTERM', 2_000);
      await proc?.stop('SIGTERM', 10_000);
      removeRunDir(dir);
    },
  };
}
