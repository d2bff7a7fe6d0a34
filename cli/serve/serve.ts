/**
 * `mta-policy serve`, without the process: load the configuration and the bundle into one
 * engine, start every adapter the configuration asks for (cli/serve/adapters.ts), reload on
 * request, stop within a deadline. Signals, the file watch and the exit code are the command's
 * (cli/commands/serve.ts); sockets are the adapters'.
 */
import { loadConfig } from '../../engine/config/load.js';
import type { Config } from '../../engine/config/types.js';
import { Engine } from '../../engine/engine.js';
import { ConfigError, MtaPolicyError, formatIssue } from '../../engine/errors.js';
import { ADAPTERS, nativeListeners, type AdapterEntry, type PlannedListener, type RunningAdapter, type ServeLogger } from './adapters.js';

/** Codes of the errors `serve` raises itself (the adapters' and the loader's pass through). */
export type ServeErrorCode = 'SERVE_START_FAILED' | 'SERVE_NATIVE_UNSERVED' | 'SERVE_NOTHING_TO_SERVE';

/** `serve` cannot start. The message is one line, fit for an operator. */
export class ServeError extends MtaPolicyError {
  declare readonly code: ServeErrorCode;
  constructor(code: ServeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Default for `--shutdown-timeout`: how long work in flight may take after SIGTERM. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** Options of {@link startServe}. */
export interface ServeOptions {
  /** The configuration file (reloads read it again). */
  readonly configFile: string;
  /** Policy bundle directory; default the shipped one. Reloads read it again too. */
  readonly bundle?: string;
  readonly logger: ServeLogger;
  /** The adapters to choose from; default {@link ADAPTERS}. */
  readonly adapters?: readonly AdapterEntry[];
}

/** What a reload did. */
export type ReloadOutcome =
  | { readonly ok: true; readonly restartNeeded: boolean }
  | { readonly ok: false; readonly error: MtaPolicyError | Error };

/** A running `serve`. */
export interface Served {
  readonly engine: Engine;
  /** Every socket listened on, as bound. */
  readonly listeners: readonly { readonly adapter: string; readonly address: string; readonly connectors: readonly string[] }[];
  /**
   * Read the configuration file (and bundle) again and swap it in atomically; on any error the
   * running configuration keeps serving. Logs one line either way (the engine logs the
   * success). Reloads never overlap: one asked for meanwhile runs once after.
   */
  reload(trigger: string): Promise<ReloadOutcome>;
  /** Stop every listener, letting work in flight finish for up to `deadlineMs`. Idempotent. */
  close(deadlineMs: number): Promise<void>;
}

/** `(adapter, address)` of every socket `config` asks for, sorted: what only a restart changes. */
function listenerSet(config: Config, adapters: readonly AdapterEntry[]): string[] {
  const all = adapters.flatMap((a) => a.plan(config).map((p) => `${a.name} ${p.address}`));
  const native = nativeListeners(config).map((p) => `native ${p.address}`);
  return [...new Set([...all, ...native])].sort();
}

/** Connectors with `listen: true` that no available adapter serves. */
function unserved(config: Config, adapters: readonly AdapterEntry[]): string[] {
  const served = new Set(adapters.flatMap((a) => a.plan(config).flatMap((p) => p.connectors)));
  return [...new Set(nativeListeners(config).flatMap((p) => p.connectors))].filter((c) => !served.has(c));
}

/** `file:line: key` of a planned listener, as configuration errors name places. */
const where = (p: PlannedListener, adapter: string): string =>
  p.source === undefined ? adapter : `${p.source.file}${p.source.line === undefined ? '' : `:${p.source.line}`}: ${p.source.path || adapter}`;

/**
 * Load, check and start. Rejects with `ConfigError` (every issue, as `check` reports them), a
 * bundle error, or `ServeError` — after closing whatever it had opened. Logs one line per
 * listener (`listening`: adapter, address, connectors) only once all of them listen.
 */
export async function startServe(options: ServeOptions): Promise<Served> {
  const adapters = options.adapters ?? ADAPTERS;
  const log = options.logger;
  const config = await loadConfig(options.configFile);
  const engine = await Engine.create({ config, logger: log, ...(options.bundle === undefined ? {} : { bundle: options.bundle }) });

  const missing = unserved(config, adapters);
  if (missing.length > 0) {
    throw new ServeError(
      'SERVE_NATIVE_UNSERVED',
      `${config.file}: connector${missing.length === 1 ? '' : 's'} ${missing.map((c) => JSON.stringify(c)).join(', ')} ${missing.length === 1 ? 'has' : 'have'} listen: true, ` +
        `but this build has no native submission listener (set listen: false on ${missing.length === 1 ? 'it' : 'them'} and configure milter / postfix_policy in front of your MTA)`,
    );
  }
  const planned = adapters.map((a) => ({ adapter: a, plan: a.plan(config) })).filter((p) => p.plan.length > 0);
  if (planned.length === 0) {
    throw new ServeError('SERVE_NOTHING_TO_SERVE', `${config.file}: nothing to serve: configure milter.listen, postfix_policy.listen or a connector with listen: true`);
  }

  const running: { adapter: AdapterEntry; run: RunningAdapter }[] = [];
  for (const { adapter, plan } of planned) {
    try {
      running.push({ adapter, run: await adapter.start({ engine, config, logger: log, plan }) });
    } catch (e) {
      await Promise.all(running.map((r) => r.run.close(0).catch(() => undefined)));
      const first = plan[0] as PlannedListener;
      const reason = e instanceof Error ? e.message : String(e);
      throw new ServeError('SERVE_START_FAILED', `${where(first, adapter.name)}: ${reason}`, { cause: e });
    }
  }
  const listeners = running.flatMap((r) => r.run.listeners.map((l) => ({ adapter: r.adapter.name, ...l })));
  for (const l of listeners) log.info({ adapter: l.adapter, listen: l.address, connectors: l.connectors }, 'listening');

  const started = listenerSet(config, adapters);
  let closing: Promise<void> | undefined;
  let current: Promise<ReloadOutcome> | undefined;
  let again: { trigger: string; promise: Promise<ReloadOutcome> } | undefined;

  const reloadOnce = async (trigger: string): Promise<ReloadOutcome> => {
    let next: Config;
    try {
      next = await loadConfig(options.configFile);
      await engine.reload(next, options.bundle);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const issues = e instanceof ConfigError ? e.issues.map(formatIssue) : undefined;
      log.error(
        { trigger, code: (e as { code?: unknown }).code ?? 'SERVE_RELOAD_FAILED', ...(issues === undefined ? {} : { issues }) },
        `configuration not reloaded, the running one keeps serving: ${err.message}`,
      );
      return { ok: false, error: err };
    }
    const now = listenerSet(next, adapters);
    const restartNeeded = now.join('\n') !== started.join('\n');
    if (restartNeeded) {
      log.warn(
        { trigger, listening: started, configured: now },
        'the configured listeners differ from the running ones: restart mta-policy serve to apply that; the new policy applies to the running listeners',
      );
    }
    return { ok: true, restartNeeded };
  };

  const reload = (trigger: string): Promise<ReloadOutcome> => {
    if (closing !== undefined) return Promise.resolve({ ok: false, error: new Error('shutting down') });
    if (current === undefined) {
      current = reloadOnce(trigger).finally(() => {
        current = undefined;
      });
      return current;
    }
    // One more after the running one, however many were asked for meanwhile.
    again ??= {
      trigger,
      promise: current.then(() => {
        const t = (again as { trigger: string }).trigger;
        again = undefined;
        return reload(t);
      }),
    };
    return again.promise;
  };

  return {
    engine,
    listeners,
    reload,
    close(deadlineMs) {
      closing ??= Promise.all(running.map((r) => r.run.close(deadlineMs))).then(() => undefined);
      return closing;
    },
  };
}
