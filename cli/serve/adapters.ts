/**
 * The adapters `mta-policy serve` can start, as data: what each listens on under a given
 * configuration, which connectors it serves there, and how to start and stop it. The
 * orchestration (cli/serve/serve.ts) knows no adapter by name; adding one is one entry in
 * {@link ADAPTERS}. Each adapter's own start function owns its sockets.
 */
import type { Config, SocketAddress, SourceRef } from '../../engine/config/types.js';
import type { Engine } from '../../engine/engine.js';
import { startMilter } from '../../adapters/milter/index.js';
import { PolicyServer } from '../../adapters/postfix-policy/index.js';
import { startSubmission } from '../../adapters/submission/index.js';
import { formatListen, fromSocketAddress } from '../../adapters/shared/listen.js';

/** The logger adapters write to (pino's Logger satisfies it). */
export interface ServeLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): ServeLogger;
}

/** One socket an adapter is asked to listen on. */
export interface PlannedListener {
  /** `inet:PORT@HOST` / `unix:/path` (milter, policy) or the binding `ip:port` (native). */
  readonly address: string;
  /** The enabled connectors whose sessions arrive there. */
  readonly connectors: readonly string[];
  /** Where the configuration asks for it, for start-up errors. */
  readonly source?: SourceRef;
}

/** One socket an adapter listens on. */
export interface RunningListener {
  /** As bound (the port the OS chose for port 0). */
  readonly address: string;
  readonly connectors: readonly string[];
}

/** A started adapter. */
export interface RunningAdapter {
  readonly listeners: readonly RunningListener[];
  /** Stop accepting, let work in flight finish for up to `deadlineMs`, then drop the rest. */
  close(deadlineMs: number): Promise<void>;
}

/** What an adapter gets to start with. */
export interface AdapterContext {
  readonly engine: Engine;
  readonly config: Config;
  readonly logger: ServeLogger;
  /** This adapter's plan for `config` (never empty when `start` is called). */
  readonly plan: readonly PlannedListener[];
}

/** One adapter `serve` can run. */
export interface AdapterEntry {
  /** Log and error name (`adapter` field). */
  readonly name: string;
  /** The sockets `config` asks of this adapter; empty when it is not configured. */
  plan(config: Config): readonly PlannedListener[];
  /** Listen. Rejects with a coded error naming the address and the reason; opens nothing then. */
  start(ctx: AdapterContext): Promise<RunningAdapter>;
}

/**
 * Connectors that mta-policy's own submission listener serves: enabled, `listen: true`
 * (issue 7: the default when the configuration has neither `milter` nor `postfix_policy`).
 * One planned listener per binding, with every such connector bound there.
 */
export function nativeListeners(config: Config): PlannedListener[] {
  const byBinding = new Map<string, { connectors: string[]; source: SourceRef }>();
  for (const c of config.connectors) {
    if (!c.enabled || !c.listen) continue;
    for (const b of c.bindings) {
      const entry = byBinding.get(b.text);
      if (entry === undefined) byBinding.set(b.text, { connectors: [c.name], source: c.source });
      else entry.connectors.push(c.name);
    }
  }
  return [...byBinding].map(([address, e]) => ({ address, connectors: e.connectors, source: e.source }));
}

/** Connectors whose SMTP listeners belong to the MTA: the milter and the policy server see them. */
function mtaConnectors(config: Config): string[] {
  return config.connectors.filter((c) => c.enabled && !c.listen).map((c) => c.name);
}

function mtaListener(listener: { readonly listen: SocketAddress; readonly source: SourceRef } | undefined, config: Config): PlannedListener[] {
  return listener === undefined ? [] : [{ address: formatListen(fromSocketAddress(listener.listen)), connectors: mtaConnectors(config), source: listener.source }];
}

/** The milter (`milter.listen`): Postfix `smtpd_milters`, Sendmail `INPUT_MAIL_FILTER`. */
export const MILTER: AdapterEntry = {
  name: 'milter',
  plan: (config) => mtaListener(config.milter, config),
  async start({ engine, logger, plan }) {
    const p = plan[0] as PlannedListener;
    const server = await startMilter(engine, { listen: p.address, logger });
    return { listeners: [{ address: formatListen(server.address), connectors: p.connectors }], close: (ms) => server.close(ms) };
  },
};

/** The Postfix policy-delegation server (`postfix_policy.listen`): `check_policy_service`, relay grants. */
export const POSTFIX_POLICY: AdapterEntry = {
  name: 'postfix-policy',
  plan: (config) => mtaListener(config.postfixPolicy, config),
  async start({ engine, config, logger, plan }) {
    const p = plan[0] as PlannedListener;
    const server = await PolicyServer.start({ listen: (config.postfixPolicy as { listen: SocketAddress }).listen, engine, logger });
    return { listeners: [{ address: formatListen(server.address), connectors: p.connectors }], close: (ms) => server.close(ms) };
  },
};

/**
 * mta-policy's own submission listener (adapters/submission): every binding of every enabled
 * connector with `listen: true`, with the connector's TLS, AUTH back ends and next hop.
 */
export const SUBMISSION: AdapterEntry = {
  name: 'submission',
  plan: nativeListeners,
  async start({ engine, logger, plan }) {
    const listener = await startSubmission(engine, { logger });
    // One smtp-server per (connector, binding); serve reports one line per binding, as planned.
    const bound = new Map<string, string>();
    for (const a of listener.addresses) if (!bound.has(a.binding)) bound.set(a.binding, formatBinding(a.host, a.port));
    const listeners = plan.map((p) => ({ address: bound.get(p.address) ?? p.address, connectors: p.connectors }));
    return { listeners, close: (ms) => listener.close(ms) };
  },
};

/** `ip:port` as connector bindings write it (`[v6]:port`). */
const formatBinding = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** Every adapter this build can run, in start-up order. */
export const ADAPTERS: readonly AdapterEntry[] = [MILTER, POSTFIX_POLICY, SUBMISSION];
