/**
 * Postfix's load tools and swaks: `smtp-sink` (a fake next hop that can capture each message and
 * inject faults), `smtp-source` (plaintext load) and `swaks` (one scripted session, TLS and AUTH).
 * Options follow the tools' own man pages; `args` passes anything not modelled here.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN } from './bins.js';
import {
  freePort, makeRunDir, PeerError, removeRunDir, retryPortRace, runCommand, runOk, spawnTracked, tail, waitFor, waitForListeners,
  type CommandResult, type TrackedProcess,
} from './proc.js';

/** Options for {@link smtpSink}. */
export interface SmtpSinkOptions {
  /** Capture each transaction to a file (`-d`), readable with {@link SmtpSink.messages}. Default true. */
  readonly capture?: boolean;
  /** Speak LMTP (`-L`). */
  readonly lmtp?: boolean;
  /** Listen on this unix socket path instead of a TCP port. */
  readonly unixPath?: string;
  /** Listen on this 127.0.0.1 port (e.g. a restarted next hop on its old port); no retry if it is taken. Default: a free one. */
  readonly port?: number;
  /** Listen backlog. Default 256. */
  readonly backlog?: number;
  /** More smtp-sink options, e.g. `['-r', 'rcpt']` (soft-reject RCPT), `['-Q', '.']`, `['-w', '2']`. */
  readonly args?: readonly string[];
}

/** One captured transaction (smtp-sink's dump file, see smtp-sink(1) "DUMP FILE FORMAT"). */
export interface SinkMessage {
  readonly file: string;
  readonly clientAddr: string;
  readonly helo: string | undefined;
  /** `X-Mail-Args`: the MAIL FROM argument, e.g. `<a@example.net> SIZE=123`. */
  readonly mailArgs: string;
  /** `X-Rcpt-Args`, one per RCPT, in order. */
  readonly rcptArgs: readonly string[];
  /** The message as received: everything after smtp-sink's own Received: header. */
  readonly message: string;
}

/** A running smtp-sink. */
export interface SmtpSink {
  readonly host: '127.0.0.1';
  /** The TCP port (0 when listening on `unixPath`). */
  readonly port: number;
  readonly pid: number;
  /** The smtp-sink process itself, to kill it mid-transaction. */
  readonly child: ChildProcess;
  readonly dir: string;
  /** Where each captured transaction is dumped (smtp-sink(1) `-d`), or undefined with `capture: false`. */
  readonly dumpDir: string | undefined;
  /** Complete captured transactions so far, oldest first (files smtp-sink still has open are skipped). */
  messages(): Promise<SinkMessage[]>;
  waitForMessages(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  stop(): Promise<void>;
}

/** smtp-sink drops to this user after binding (required when run as root, smtp-sink(1) -u). */
const SINK_USER = 'nobody';

export function parseSinkDump(file: string, text: string): SinkMessage {
  const fields: Array<[string, string]> = [];
  let rest = text;
  for (;;) {
    const nl = rest.indexOf('\n');
    if (nl < 0) break;
    const m = /^(X-[A-Za-z-]+): (.*)$/.exec(rest.slice(0, nl));
    if (m === null) break;
    fields.push([m[1] ?? '', m[2] ?? '']);
    rest = rest.slice(nl + 1);
  }
  // smtp-sink's three-line Received: header ends its own part.
  const received = /^Received: [^\n]*\n\t[^\n]*\n\t[^\n]*\n/.exec(rest);
  if (received !== null) rest = rest.slice(received[0].length);
  const get = (k: string): string[] => fields.filter(([n]) => n === k).map(([, v]) => v);
  return {
    file,
    clientAddr: get('X-Client-Addr')[0] ?? '',
    helo: get('X-Helo-Args')[0],
    mailArgs: get('X-Mail-Args')[0] ?? '',
    rcptArgs: get('X-Rcpt-Args'),
    message: rest.replace(/\n$/, ''), // smtp-sink appends one empty line
  };
}

/** Starts smtp-sink on a free loopback port (or `unixPath`); retries when the port was taken meanwhile. */
export const smtpSink = (opts: SmtpSinkOptions = {}): Promise<SmtpSink> => (opts.port === undefined ? retryPortRace(() => startSink(opts)) : startSink(opts));

async function startSink(opts: SmtpSinkOptions): Promise<SmtpSink> {
  const dir = await makeRunDir('smtp-sink');
  const capture = opts.capture ?? true;
  const dumpDir = join(dir, 'dump');
  if (capture) await runOk('install', ['-d', '-o', SINK_USER, dumpDir], { timeoutMs: 5_000 });
  const port = opts.unixPath === undefined ? (opts.port ?? (await freePort())) : 0;
  const listen = opts.unixPath === undefined ? `127.0.0.1:${port}` : `unix:${opts.unixPath}`;
  const args = [
    '-u', SINK_USER, '-h', 'sink.test',
    ...(capture ? ['-d', `${dumpDir}/%Y%m%d%H%M%S.`] : []),
    ...(opts.lmtp === true ? ['-L'] : []),
    ...(opts.args ?? []),
    listen, String(opts.backlog ?? 256),
  ];
  const proc = spawnTracked(BIN.smtpSink, args, { runDir: dir, what: 'smtp-sink' });
  const log = (): string => tail(join(dir, 'smtp-sink.out'));
  try {
    if (opts.unixPath === undefined) {
      await waitForListeners(proc, [port], { timeoutMs: 10_000, what: 'smtp-sink', log });
    } else {
      const path = opts.unixPath;
      await waitFor(() => {
        if (proc.hasExited()) throw new PeerError('PEER_START', `smtp-sink exited during start-up:\n${log()}`);
        return existsSync(path);
      }, { timeoutMs: 10_000, what: `smtp-sink on ${listen}`, detail: log });
    }
  } catch (err) {
    await proc.stop('SIGKILL', 1_000);
    removeRunDir(dir);
    throw err;
  }
  return sinkInstance(dir, capture ? dumpDir : null, port, proc);
}

function sinkInstance(dir: string, dumpDir: string | null, port: number, proc: TrackedProcess): SmtpSink {
  const openFiles = async (): Promise<Set<string>> => {
    const out = new Set<string>();
    const fdDir = `/proc/${proc.pid}/fd`;
    for (const fd of await readdir(fdDir).catch(() => [] as string[])) {
      const target = await readlink(join(fdDir, fd)).catch(() => '');
      if (target !== '') out.add(target);
    }
    return out;
  };
  const messages = async (): Promise<SinkMessage[]> => {
    if (dumpDir === null) throw new PeerError('PEER_USAGE', 'smtp-sink was started with capture: false');
    const names = (await readdir(dumpDir)).sort();
    const open = await openFiles(); // a file smtp-sink still holds is a transaction in progress
    const done = names.map((n) => join(dumpDir, n)).filter((f) => !open.has(f));
    return Promise.all(done.map(async (f) => parseSinkDump(f, await readFile(f, 'utf8'))));
  };
  let stopped = false;
  return {
    host: '127.0.0.1', port, pid: proc.pid, child: proc.child, dir, dumpDir: dumpDir ?? undefined,
    messages,
    waitForMessages: (count, timeoutMs = 10_000) =>
      waitFor(async () => {
        const m = await messages();
        return m.length >= count ? m : null;
      }, { timeoutMs, what: `${count} message(s) at smtp-sink :${port}` }),
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc.stop('SIGTERM', 3_000);
      removeRunDir(dir);
    },
  };
}

/** Options for {@link smtpSource}; see smtp-source(1). */
export interface SmtpSourceOptions {
  /** `host:port`, or `unix:/path`. */
  readonly target: string;
  readonly sessions?: number;      // -s
  readonly messages?: number;      // -m
  readonly size?: number;          // -l payload bytes
  readonly from?: string;          // -f
  readonly to?: string;            // -t
  readonly recipients?: number;    // -r
  /** Reuse the connection for the next message (-d). */
  readonly reuse?: boolean;
  readonly lmtp?: boolean;         // -L
  /** HELO name and default address domain (-M). */
  readonly helo?: string;
  /** Don't abort on unexpected replies (-A). */
  readonly noAbort?: boolean;
  readonly args?: readonly string[];
  /** Hard bound; the run is killed after it. Default 120 000 ms. */
  readonly timeoutMs?: number;
}

/** Runs smtp-source to completion (bounded). Exit code 0 means every message was accepted. */
export function smtpSource(opts: SmtpSourceOptions): Promise<CommandResult> {
  const a: string[] = [];
  const num = (flag: string, v: number | undefined): void => { if (v !== undefined) a.push(flag, String(v)); };
  const str = (flag: string, v: string | undefined): void => { if (v !== undefined) a.push(flag, v); };
  num('-s', opts.sessions); num('-m', opts.messages); num('-l', opts.size); num('-r', opts.recipients);
  str('-f', opts.from); str('-t', opts.to); str('-M', opts.helo);
  if (opts.reuse === true) a.push('-d');
  if (opts.lmtp === true) a.push('-L');
  if (opts.noAbort === true) a.push('-A');
  a.push(...(opts.args ?? []), opts.target);
  return runCommand(BIN.smtpSource, a, { timeoutMs: opts.timeoutMs ?? 120_000 });
}

/** Options for {@link swaks}; see swaks(1). */
export interface SwaksOptions {
  /** `host:port` (`--server`), or use `socket`. */
  readonly server?: string;
  /** Unix socket path (`--socket`). */
  readonly socket?: string;
  readonly from?: string;
  /** One or more recipients (comma-joined for `--to`). */
  readonly to?: string | readonly string[];
  readonly ehlo?: string;
  /** `starttls` (`--tls`), `implicit` (`--tls-on-connect`), `optional` (`--tls-optional`). */
  readonly tls?: 'starttls' | 'implicit' | 'optional';
  readonly auth?: { readonly user: string; readonly password: string; readonly mechanism?: string };
  /** Extra headers, `Name: value` each. */
  readonly headers?: readonly string[];
  readonly body?: string;
  /** Whole message (`--data`): headers and body, `\n` line ends. */
  readonly data?: string;
  readonly protocol?: 'SMTP' | 'ESMTP' | 'LMTP';
  /** `--quit-after` stage (`connect banner first-helo tls helo auth mail rcpt`). */
  readonly quitAfter?: string;
  readonly args?: readonly string[];
  readonly timeoutMs?: number;
}

/** swaks' transcript and exit code (0 = delivered; see swaks(1) "EXIT CODES"). */
export interface SwaksResult extends CommandResult {
  /** The server's reply lines, swaks' `<-`/`<~`/`<**`/`<~*` prefix stripped. */
  readonly replies: readonly string[];
}

export async function swaks(opts: SwaksOptions): Promise<SwaksResult> {
  const a: string[] = ['--timeout', '15'];
  if (opts.server !== undefined) a.push('--server', opts.server);
  if (opts.socket !== undefined) a.push('--socket', opts.socket);
  if (opts.from !== undefined) a.push('--from', opts.from);
  if (opts.to !== undefined) a.push('--to', typeof opts.to === 'string' ? opts.to : opts.to.join(','));
  if (opts.ehlo !== undefined) a.push('--ehlo', opts.ehlo);
  if (opts.tls === 'starttls') a.push('--tls');
  if (opts.tls === 'implicit') a.push('--tls-on-connect');
  if (opts.tls === 'optional') a.push('--tls-optional');
  if (opts.auth !== undefined) {
    a.push('--auth', opts.auth.mechanism ?? 'PLAIN', '--auth-user', opts.auth.user, '--auth-password', opts.auth.password);
  }
  for (const h of opts.headers ?? []) a.push('--header', h);
  if (opts.body !== undefined) a.push('--body', opts.body);
  if (opts.data !== undefined) a.push('--data', '-');
  if (opts.protocol !== undefined) a.push('--protocol', opts.protocol);
  if (opts.quitAfter !== undefined) a.push('--quit-after', opts.quitAfter);
  a.push(...(opts.args ?? []));
  const r = await runCommand(BIN.swaks, a, {
    timeoutMs: opts.timeoutMs ?? 30_000,
    ...(opts.data === undefined ? {} : { input: opts.data }),
  });
  // swaks marks server lines `<-` (plain), `<~` (inside TLS), and errors `<**` / `<~*`.
  const replies = r.stdout.split('\n').filter((l) => /^ *<(-|~|\*\*|~\*) /.test(l)).map((l) => l.replace(/^ *<(-|~|\*\*|~\*) +/, ''));
  return { ...r, replies };
}
