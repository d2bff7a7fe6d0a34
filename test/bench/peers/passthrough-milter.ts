/**
 * Starts the C pass-through milter (passthrough-milter.c, built by scripts/lib.sh
 * `ensure_passthrough_milter`) on a free loopback port or a unix socket in a run directory.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { passthroughMilterBinary, peerMissing } from '../../peers/bins.js';
import { freePort, makeRunDir, PeerError, removeRunDir, retryPortRace, spawnTracked, tail, waitFor, waitForListeners } from '../../peers/proc.js';

/** A running pass-through milter. */
export interface PassthroughMilter {
  readonly pid: number;
  /** For Postfix `smtpd_milters`: `inet:127.0.0.1:PORT` or `unix:/path`. */
  readonly postfixSpec: string;
  /** For Sendmail `INPUT_MAIL_FILTER(…, S=…)`: `inet:PORT@127.0.0.1` or `unix:/path`. */
  readonly sendmailSpec: string;
  stop(): Promise<void>;
}

/** Starts the milter; `transport` picks TCP on 127.0.0.1 or a unix socket. */
export const startPassthroughMilter = (opts: { transport: 'inet' | 'unix'; backlog?: number }): Promise<PassthroughMilter> =>
  retryPortRace(() => startOnce(opts));

async function startOnce(opts: { transport: 'inet' | 'unix'; backlog?: number }): Promise<PassthroughMilter> {
  const missing = peerMissing('passthrough-milter');
  if (missing !== null) throw new PeerError('PEER_MISSING', missing);
  const dir = await makeRunDir('passthrough-milter');
  const port = opts.transport === 'inet' ? await freePort() : 0;
  const path = join(dir, 'milter.sock');
  const spec = opts.transport === 'inet' ? `inet:${port}@127.0.0.1` : `unix:${path}`;
  const proc = spawnTracked(passthroughMilterBinary(), ['-p', spec, '-b', String(opts.backlog ?? 1024)], { runDir: dir, what: 'passthrough-milter' });
  const log = (): string => tail(join(dir, 'passthrough-milter.out'));
  try {
    if (opts.transport === 'inet') {
      await waitForListeners(proc, [port], { timeoutMs: 10_000, what: 'passthrough-milter', log });
    } else {
      await waitFor(() => {
        if (proc.hasExited()) throw new PeerError('PEER_START', `passthrough-milter exited:\n${log()}`);
        return existsSync(path);
      }, { timeoutMs: 10_000, what: `passthrough-milter on ${spec}`, detail: log });
    }
  } catch (err) {
    await proc.stop('SIGKILL', 1_000);
    removeRunDir(dir);
    throw err;
  }
  let stopped = false;
  return {
    pid: proc.pid,
    postfixSpec: opts.transport === 'inet' ? `inet:127.0.0.1:${port}` : `unix:${path}`,
    sendmailSpec: spec,
    async stop() {
      if (stopped) return;
      stopped = true;
      // libmilter ends smfi_main on SIGTERM only at its next poll timeout (seconds); it keeps no
      // state worth a graceful exit, so give it a moment and then SIGKILL.
      await proc.stop('SIGTERM', 500);
      removeRunDir(dir);
    },
  };
}
