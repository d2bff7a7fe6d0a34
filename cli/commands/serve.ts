import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { pino, type Level } from 'pino';
import type { Io } from '../program.js';
import { EXIT } from '../program.js';
import { startServe, type Served } from '../serve/serve.js';

/** Levels `--log-level` takes (pino's). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Edits arrive as several events (truncate, write, rename); one reload after they settle. */
export const WATCH_DEBOUNCE_MS = 300;

/** Extra time past the shutdown deadline for the adapters to drop what was left. */
const CLOSE_GRACE_MS = 2_000;

/** Options of {@link serveCommand}, as the CLI parsed them. */
export interface ServeCommandOptions {
  readonly config: string;
  readonly bundle?: string;
  readonly logLevel: Level | 'silent';
  /** Milliseconds. */
  readonly shutdownTimeoutMs: number;
  /** Reload when the configuration file changes (default on). */
  readonly watch: boolean;
}

/**
 * `mta-policy serve`: JSON log lines on stdout; SIGTERM/SIGINT stop within the deadline (exit 0),
 * a second one exits at once (exit 1); SIGHUP and edits of the configuration file reload it.
 * Resolves with the exit code once everything is closed.
 */
export async function serveCommand(opts: ServeCommandOptions, io: Io): Promise<number> {
  const logger = pino({ level: opts.logLevel, base: { pid: process.pid } }, io.stdout as pino.DestinationStream);
  // Signals and the watch are taken before the configuration is read: an edit, a SIGHUP or a
  // SIGTERM that arrives while starting is acted on once the listeners are up, never lost
  // (and never the default action of killing the process).
  let served: Served | undefined;
  let pendingReload: string | undefined;
  let pendingStop: NodeJS.Signals | undefined;
  let stopping = false;
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let done: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (done = resolve));

  const reload = (trigger: string): void => {
    if (served === undefined) pendingReload = trigger;
    else if (!stopping) void served.reload(trigger);
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping || pendingStop !== undefined) {
      logger.error({ signal }, 'second signal: exiting now, work in flight is lost');
      process.exit(EXIT.failure);
    }
    if (served === undefined) {
      pendingStop ??= signal;
      return;
    }
    stopping = true;
    const running = served;
    logger.info({ signal, deadline_ms: opts.shutdownTimeoutMs }, 'shutting down: no new connections, finishing work in flight');
    watcher?.close();
    clearTimeout(debounce);
    const stuck = setTimeout(() => {
      logger.error({ signal }, 'listeners did not close after the deadline; exiting');
      process.exit(EXIT.failure);
    }, opts.shutdownTimeoutMs + CLOSE_GRACE_MS);
    running.close(opts.shutdownTimeoutMs).then(
      () => {
        clearTimeout(stuck);
        logger.info({}, 'stopped');
        done(EXIT.ok);
      },
      (e: unknown) => {
        clearTimeout(stuck);
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'closing failed');
        done(EXIT.failure);
      },
    );
  };
  const onHup = (): void => reload('SIGHUP');
  process.on('SIGHUP', onHup);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const release = (): void => {
    watcher?.close();
    clearTimeout(debounce);
    process.off('SIGHUP', onHup);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  };

  if (opts.watch) {
    // The directory, not the file: editors and config managers replace the file by rename.
    const file = resolve(opts.config);
    const name = basename(file);
    try {
      watcher = watch(dirname(file), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        clearTimeout(debounce);
        debounce = setTimeout(() => reload('file'), WATCH_DEBOUNCE_MS);
      });
      watcher.on('error', (e) => logger.warn({ err: e.message }, 'configuration file watch failed; reload with SIGHUP'));
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'cannot watch the configuration file; reload with SIGHUP');
    }
  }

  try {
    served = await startServe({ configFile: opts.config, logger, ...(opts.bundle === undefined ? {} : { bundle: opts.bundle }) });
  } catch (e) {
    release();
    throw e;
  }
  if (pendingStop !== undefined) {
    const signal = pendingStop;
    pendingStop = undefined;
    stop(signal);
  }
  else if (pendingReload !== undefined) reload(pendingReload);
  const code = await finished;
  release();
  return code;
}
