/**
 * Process and scratch-directory plumbing shared by every peer: each child is spawned in its own
 * process group, recorded by (pid, start time) in its run directory's `owner.json`, and stopped by
 * that pid only. A run directory left behind by a crashed test process is reaped the next time any
 * harness creates one (see {@link makeRunDir}). Every wait is bounded.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A harness failure: a peer would not start, a wait ran out, a command failed. */
export class PeerError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'PeerError';
  }
}

/** Every run directory lives under this folder of the OS temp dir. */
export const runRoot = (): string => join(tmpdir(), 'mta-policy-peers');

/** Each run directory's record of who owns it and what it started (pid + start time each). */
export const OWNER_FILE = 'owner.json';
export interface OwnerRecord { ownerPid: number; ownerStart: string; procs: Array<{ pid: number; start: string; what: string }> }

/** Field 22 of /proc/PID/stat (start time in clock ticks): with the pid it names one process for good. */
export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // fields[0] is field 3 (state)
  } catch {
    return null;
  }
}

/** Live (non-zombie) members of process group `pgid`. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] !== 'Z' && Number(f[2]) === pgid) out.push(Number(name));
    } catch {
      // raced with its exit
    }
  }
  return out;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // group already gone
  }
}

/** Process groups this Node process started and has not yet seen end. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function track(pid: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort when a test forgot stop(): the harness never outlives its Node process.
    process.on('exit', () => {
      for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
    });
  }
  liveGroups.add(pid);
}

/** A child started by the harness, leader of its own process group. */
export interface TrackedProcess {
  readonly pid: number;
  readonly what: string;
  readonly child: ChildProcess;
  /** Settles when the child exits (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /**
   * Sends `signal` to the leader, waits up to `graceMs` for it to exit, then SIGKILLs the whole
   * group and waits (bounded) until no member is left.
   */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** Options for {@link spawnTracked}: stdout/stderr go to `logFile` unless `pipe` is set. */
export interface SpawnTrackedOptions {
  readonly runDir: string;
  readonly what: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly logFile?: string;
  /** Pipe stdin/stdout (for a peer driven over stdio, such as `sendmail -bs`). */
  readonly pipe?: boolean;
}

export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnTrackedOptions): TrackedProcess {
  const log = openSync(opts.logFile ?? join(opts.runDir, `${opts.what}.out`), 'a');
  const spawnOpts: SpawnOptions = {
    detached: true, // own process group, so the group can be stopped as one
    stdio: opts.pipe === true ? ['pipe', 'pipe', log] : ['ignore', log, log],
    env: opts.env ?? process.env,
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  };
  const child = spawn(cmd, [...args], spawnOpts);
  closeSync(log);
  child.once('error', () => undefined); // ENOENT & co: reported below through the missing pid
  if (child.pid === undefined) throw new PeerError('PEER_SPAWN', `cannot start ${cmd}`);
  const pid = child.pid;
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  const tracked: TrackedProcess = {
    pid,
    what: opts.what,
    child,
    exited,
    hasExited: () => done,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000) {
      if (!done) {
        try {
          process.kill(pid, signal);
        } catch {
          // exited meanwhile
        }
        await Promise.race([exited, sleep(graceMs)]);
      }
      signalGroup(pid, 'SIGKILL');
      await waitFor(() => groupMembers(pid).length === 0, { timeoutMs: 5_000, what: `${opts.what} (pgid ${pid}) to exit` });
      liveGroups.delete(pid);
    },
  };
  track(pid);
  recordProc(opts.runDir, pid, opts.what);
  return tracked;
}

function readOwner(dir: string): OwnerRecord | null {
  try {
    return JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as OwnerRecord;
  } catch {
    return null;
  }
}

function recordProc(dir: string, pid: number, what: string): void {
  const rec = readOwner(dir);
  if (rec === null) return;
  rec.procs.push({ pid, start: procStartTime(pid) ?? '', what });
  writeFileSync(join(dir, OWNER_FILE), JSON.stringify(rec));
}

/** Kills what a dead owner left in `dir` (only processes whose pid and start time match) and removes it. */
function reap(dir: string): void {
  const rec = readOwner(dir);
  if (rec === null) return; // being created right now by another process, or not ours
  if (procStartTime(rec.ownerPid) === rec.ownerStart) return; // owner still running
  for (const p of rec.procs) if (p.start !== '' && procStartTime(p.pid) === p.start) signalGroup(p.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

/** Reaps every run directory whose owning process has died (done once per process by {@link makeRunDir}). */
export function reapStale(): void {
  if (!existsSync(runRoot())) return;
  for (const name of readdirSync(runRoot())) reap(join(runRoot(), name));
}

let reaped = false;

/**
 * A fresh run directory `runRoot()/<kind>-XXXXXX`, mode 0755 (Postfix, Dovecot and smtp-sink
 * drop privileges and must traverse it). The first call per process reaps directories whose
 * owning process has died.
 */
export async function makeRunDir(kind: string): Promise<string> {
  mkdirSync(runRoot(), { recursive: true, mode: 0o755 });
  if (!reaped) {
    reaped = true;
    reapStale();
  }
  const dir = await mkdtemp(join(runRoot(), `${kind}-`));
  await chmod(dir, 0o755);
  const rec: OwnerRecord = { ownerPid: process.pid, ownerStart: procStartTime(process.pid) ?? '', procs: [] };
  writeFileSync(join(dir, OWNER_FILE), JSON.stringify(rec));
  return dir;
}

/** Removes a run directory (after its processes were stopped). */
export function removeRunDir(dir: string): void {
  if (!dir.startsWith(runRoot() + '/')) throw new PeerError('PEER_RMDIR', `refusing to remove ${dir}: not a run directory`);
  rmSync(dir, { recursive: true, force: true });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs: number; what: string; intervalMs?: number; detail?: () => string },
): Promise<NonNullable<T>> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    if (Date.now() >= deadline) {
      const detail = opts.detail === undefined ? '' : `\n${opts.detail()}`;
      throw new PeerError('PEER_TIMEOUT', `timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${detail}`);
    }
    await sleep(opts.intervalMs ?? 25);
  }
}

/**
 * `n` distinct loopback TCP ports that were free a moment ago: every socket is held until all
 * are bound, so the OS cannot hand the same port out twice. Callers retry on a race.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (srv) =>
          new Promise<number>((resolve, reject) => {
            srv.once('error', reject);
            srv.listen(0, '127.0.0.1', () => {
              const addr = srv.address();
              resolve(typeof addr === 'object' && addr !== null ? addr.port : 0);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve()))));
  }
}

/** A loopback TCP port that was free a moment ago (bind :0, read, release). Callers retry on a race. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

const LISTEN = '0A';
/** 127.0.0.1, 0.0.0.0, ::, ::1 and ::ffff:127.0.0.1 as /proc/net/tcp{,6} print them. */
const LOOPBACK_OR_ANY = new Set(['0100007F', '00000000', '0'.repeat(32), '00000000000000000000000001000000', '0000000000000000FFFF00000100007F']);

/** Socket inodes in LISTEN state on 127.0.0.1:`port` (or a wildcard address). */
function listeningInodes(port: number): Set<string> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const out = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1] ?? '';
      if (f[3] === LISTEN && local.endsWith(hex) && LOOPBACK_OR_ANY.has(local.slice(0, -hex.length))) out.add(f[9] ?? '');
    }
  }
  return out;
}

/**
 * Who listens on 127.0.0.1:`port`: process `pid` itself (`ours`), someone else (`other`, the
 * port was taken between {@link freePort} and the peer's bind), or nobody yet. Read from /proc,
 * so unlike a probe connection it leaves no "connect from … lost connection" line in a peer's log.
 */
export function listenerOf(port: number, pid: number): 'ours' | 'other' | 'none' {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return 'none';
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 'other';
  }
  for (const fd of fds) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m !== null && inodes.has(m[1] ?? '')) return 'ours';
  }
  return 'other';
}

/**
 * Waits until process `proc` listens on every port in `ports`. Fails with PEER_PORT_TAKEN when
 * another process holds one (callers retry with fresh ports) and PEER_START when `proc` exits.
 */
export async function waitForListeners(
  proc: TrackedProcess, ports: readonly number[], opts: { timeoutMs: number; what: string; log: () => string },
): Promise<void> {
  await waitFor(() => {
    if (proc.hasExited()) {
      const log = opts.log();
      throw new PeerError(/address already in use/i.test(log) ? 'PEER_PORT_TAKEN' : 'PEER_START', `${opts.what} exited during start-up:\n${log}`);
    }
    const states = ports.map((p) => listenerOf(p, proc.pid));
    if (states.includes('other')) throw new PeerError('PEER_PORT_TAKEN', `${opts.what}: a port was taken by another process`);
    return states.every((s) => s === 'ours');
  }, { timeoutMs: opts.timeoutMs, what: `${opts.what} listening on ${ports.join(', ')}`, detail: opts.log });
}

/** Runs `start` up to three times while it fails with PEER_PORT_TAKEN (a lost race for a free port). */
export async function retryPortRace<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof PeerError && err.code === 'PEER_PORT_TAKEN') || attempt >= 3) throw err;
    }
  }
}

/** Last `n` lines of a text file, or '' when missing (for error messages). */
export function tail(file: string, n = 20): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-n - 1).join('\n');
}

/** The result of {@link runCommand}. */
export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

/**
 * Runs a command to completion with a hard timeout (SIGKILL to its group when it expires; the
 * result then has `signal: 'SIGKILL'`). Output is kept in memory, capped at `maxBytes` per stream.
 */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv; cwd?: string; maxBytes?: number } = {},
): Promise<CommandResult> {
  const started = Date.now();
  const max = opts.maxBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    });
    if (child.pid !== undefined) track(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => { if (stdout.length < max) stdout += s; });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < max) stderr += s; });
    const timer = setTimeout(() => { if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL'); }, opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new PeerError('PEER_SPAWN', `cannot run ${cmd}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      resolve({ code, signal, stdout, stderr, durationMs: Date.now() - started });
    });
    if (child.stdin !== null) {
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** {@link runCommand}, failing unless the exit code is 0. */
export async function runOk(cmd: string, args: readonly string[], opts: Parameters<typeof runCommand>[2] = {}): Promise<CommandResult> {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0) {
    throw new PeerError('PEER_COMMAND', `${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  }
  return r;
}
