import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { readBundle, type LoadedBundle, type Manifest } from './bundle.js';
import type { Config } from './config/types.js';
import { MemoryCounters, type Counters } from './counters.js';
import { compileData, type CompiledConnector, type PolicyData } from './data.js';
import { parseDecision, parseSessionDoc, type SessionDoc } from './decision.js';
import { EngineError, MtaPolicyError } from './errors.js';
import { INPUT_LIMITS, SessionInput, stageInputJson, type StageParts } from './input.js';
import { listenerSpecs, type ListenerSpec } from './listeners.js';
import { REPLY_CATALOGUE } from './replies.js';
import { Session, type SessionInit, type SessionOptions } from './session.js';
import { isStage, type Decision, type DecisionFor, type Facts, type FactsFor, type Stage } from './types.js';
import { loadWasmPolicy, loadWasmPolicyAsync, type WasmPolicy } from './wasm.js';

/** The logger the engine writes to: pino's Logger satisfies it. Nothing secret is ever logged. */
export interface EngineLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: object): EngineLogger;
}

export interface EngineOptions {
  readonly config: Config;
  /** A bundle directory (default: the shipped policies/dist), or an already read bundle. */
  readonly bundle?: string | LoadedBundle;
  /** Decision log (info: one line per decision) and engine failures (error, with the cause). */
  readonly logger?: EngineLogger;
  /** Connection and message-rate counters for sessions (default: in memory). */
  readonly counters?: Counters;
  /**
   * Evaluate the session document once per session state and pass it to every stage (default).
   * `false` makes every stage compute it inline: slower, and only for the equivalence test.
   */
  readonly sessionCache?: boolean;
}

export interface DecideOptions {
  /** Include every failing check and the connector choice in the decision. */
  readonly explain?: boolean;
}

/** A session document and its JSON, as passed to stages. */
export interface CachedSession {
  readonly doc: SessionDoc;
  /** The document as stages read it (input.session). */
  readonly json: string;
  /** The same with selected_by, for explain mode. */
  readonly explainJson: string;
}

/**
 * The session document as a stage input carries it: only what stages read, with false and null
 * fields left out (the Rego treats absent as false / none), since every byte is parsed again
 * inside WASM at every stage.
 */
export function stageSessionJson(doc: SessionDoc, explain: boolean): string {
  const out: Record<string, unknown> = { connector: doc.connector, principals: doc.principals, rights: doc.rights };
  if (doc.authenticated) out['authenticated'] = true;
  if (doc.login !== null) out['login'] = doc.login;
  if (doc.identity !== null) out['identity'] = doc.identity;
  if (doc.partner_rights !== null) out['partner_rights'] = doc.partner_rights;
  if (doc.unknown_identity) out['unknown_identity'] = true;
  if (doc.mta_auth !== null) out['mta_auth'] = doc.mta_auth;
  if (explain) out['selected_by'] = doc.selected_by;
  return JSON.stringify(out);
}

const SESSION_CACHE_LIMIT = 4096;

/**
 * One compiled policy with one configuration: what a decision is evaluated against. Immutable;
 * `Engine.reload` swaps in a new one, and a session keeps the snapshot it started with.
 */
export class Snapshot {
  private readonly sessions = new Map<string, CachedSession>();
  readonly listeners: readonly ListenerSpec[];

  constructor(
    readonly config: Config,
    /** The bundle the policy was loaded from: a reload without a bundle keeps it. */
    readonly bundle: LoadedBundle,
    private readonly policy: WasmPolicy,
    private readonly data: PolicyData,
    readonly cache: boolean,
  ) {
    this.listeners = listenerSpecs(config);
  }

  get manifest(): Manifest {
    return this.bundle.manifest;
  }

  connector(name: string | null): CompiledConnector | undefined {
    return name === null ? undefined : this.data.connectors[name];
  }

  /** The session document for this restricted input (evaluated once per distinct input). */
  sessionDoc(input: SessionInput): CachedSession {
    let entry = this.sessions.get(input.json);
    if (entry === undefined) {
      const doc = parseSessionDoc(this.policy.evaluate('mta/session', input.json));
      entry = { doc, json: stageSessionJson(doc, false), explainJson: stageSessionJson(doc, true) };
      if (this.sessions.size >= SESSION_CACHE_LIMIT) this.sessions.clear();
      this.sessions.set(input.json, entry);
    }
    return entry;
  }

  /** Evaluate one stage. Throws EngineError; `Engine` and `Session` turn that into a tempfail. */
  evaluate(stage: Stage, facts: Facts, input: SessionInput, cached: CachedSession | null, id: string, explain: boolean, parts: StageParts = {}): Decision {
    const built = stageInputJson(stage, facts, input, cached === null ? { explain } : { explain, sessionDoc: explain ? cached.explainJson : cached.json }, parts);
    const result = this.policy.evaluate(`mta/${stage}`, built.json);
    const connector = cached?.doc.connector ?? firstConnector(result);
    const conn = this.connector(connector);
    return parseDecision(stage, result, {
      id,
      fqdn: conn?.fqdn ?? this.data.server.fqdn,
      clientIp: input.connection.remote.ip,
      session: cached?.doc ?? null,
      ...(built.message === undefined ? {} : { headerNames: built.message.names }),
      ...(built.rcpt === undefined ? {} : { recipient: built.rcpt }),
      catalogue: (reason) => (conn?.replies[reason] ?? this.data.replies[conn?.dialect === 'rfc' || (conn === undefined && this.data.server.dialect === 'rfc') ? 'rfc' : 'exchange'][reason])?.reply,
    });
  }

  /** The decision used when the engine itself fails: a temporary failure, never an accept. */
  failSafe(id: string, stage: Stage, e: unknown, connector: string | null): Decision {
    const error =
      e instanceof MtaPolicyError
        ? { code: e.code, message: e.message }
        : { code: 'ENGINE_EVAL_FAILED', message: e instanceof Error ? e.message : String(e) };
    const reason = stage === 'connect' ? 'engine_error_connect' : 'engine_error';
    const conn = this.connector(connector);
    const dialect = conn?.dialect === 'rfc' || (conn === undefined && this.data.server.dialect === 'rfc') ? 'rfc' : 'exchange';
    // The connector's override, else the dialect's entry (server overrides included); the
    // loader only admits 4xx overrides for these reasons.
    const compiled = conn?.replies[reason] ?? this.data.replies[dialect][reason];
    const r = compiled === undefined ? REPLY_CATALOGUE[reason].exchange : { ...compiled.reply, disconnect: compiled.kind === 'disconnect' };
    const base = {
      id,
      stage,
      decision: stage === 'connect' || r.disconnect === true ? 'disconnect' : 'tempfail',
      reason,
      reply: { code: r.code, enhanced: r.enhanced, text: r.text },
      connector: conn === undefined ? null : connector,
      principals: [],
      rights: [],
      error,
    } as const;
    if (stage === 'ehlo') return { ...base, stage, advertise: { starttls: false, auth: [], size: null, require_tls: false, client_certificate: 'none' } };
    if (stage === 'auth') return { ...base, stage, logon_failure: false };
    if (stage === 'rcpt') return { ...base, stage, recipient: { address: '', domain: '', accepted_domain_type: null, routed: false } };
    if (stage === 'headers' || stage === 'eom') {
      return {
        ...base,
        stage,
        header_actions: [],
        message_flags: { auth_as: 'Anonymous', bypass_anti_spam: false, accept_authentication_flag: false, bypass_message_size_limit: false },
        remove_headers: [],
        add_headers: [],
      };
    }
    return { ...base, stage };
  }
}

function firstConnector(result: unknown): string | null {
  if (!Array.isArray(result)) return null;
  const r = (result[0] as { result?: { connector?: unknown } } | undefined)?.result?.connector;
  return typeof r === 'string' ? r : null;
}

/**
 * The policy engine: one compiled policy, one configuration, one question per SMTP stage.
 * `decide` never throws and never fails open: any failure becomes a tempfail decision
 * carrying the error's code. Adapters drive it through `session()`.
 */
export class Engine {
  private snap: Snapshot;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private counter = 0;
  private readonly logger: EngineLogger | undefined;
  /** The counters sessions share. */
  readonly counters: Counters;
  /** What one decision reads at most; adapters bound their buffers with the same numbers. */
  readonly limits = INPUT_LIMITS;

  private constructor(snap: Snapshot, options: EngineOptions) {
    this.snap = snap;
    this.logger = options.logger;
    this.counters = options.counters ?? new MemoryCounters();
  }

  static async create(options: EngineOptions): Promise<Engine> {
    const bundle = typeof options.bundle === 'object' ? options.bundle : await readBundle(options.bundle);
    return new Engine(snapshot(options.config, bundle, loadWasmPolicy(bundle.wasm), options.sessionCache !== false), options);
  }

  /** The bundle's manifest (OPA version, hashes). */
  get manifest(): Manifest {
    return this.snap.manifest;
  }

  /** The listeners the configuration describes (bindings per connector, TLS, SIZE, AUTH). */
  get listeners(): readonly ListenerSpec[] {
    return this.snap.listeners;
  }

  /** The configuration in force (read-only). */
  get config(): Config {
    return this.snap.config;
  }

  /**
   * Swap in a new configuration, and a new bundle when one is given (a directory or a read
   * bundle); without one the running bundle stays, so a custom bundle's `package mta.ext`
   * denies survive a configuration reload. Everything is loaded and validated before the swap,
   * off the decision path; on any error the running snapshot stays. Sessions already open keep
   * the snapshot they started with.
   */
  async reload(config: Config, bundle?: string | LoadedBundle): Promise<void> {
    const b = bundle === undefined ? this.snap.bundle : typeof bundle === 'object' ? bundle : await readBundle(bundle);
    const policy = await loadWasmPolicyAsync(b.wasm);
    const next = snapshot(config, b, policy, this.snap.cache);
    // A smoke decision: a bundle that cannot answer must not replace one that can.
    const probe = next.sessionDoc(SessionInput.fromFacts({ local: '127.0.0.1:25', remote: '127.0.0.1' }));
    void probe;
    this.snap = next;
    this.logger?.info({ connectors: config.connectors.length, opa: b.manifest.opa_version }, 'configuration reloaded');
  }

  private nextId(): string {
    return `${this.idPrefix}-${(++this.counter).toString(36)}`;
  }

  /** Open a session for one SMTP connection (see engine/session.ts). */
  session(init: SessionInit, options: SessionOptions = {}): Session {
    const env = {
      nextId: () => this.nextId(),
      log: (d: Decision, t0: number, bindings: object) => this.log(d, t0, bindings),
      fault: (what: string, e: unknown, bindings: object) => this.fault(what, e, bindings),
      counters: this.counters,
      timed: this.logger !== undefined,
    };
    return new Session(this.snap, env, init, options);
  }

  /** Decide one stage from stand-alone facts. Never throws: failures become a tempfail with `error` set. */
  decide<S extends Stage>(stage: S, facts: FactsFor<S>, options: DecideOptions = {}): DecisionFor<S> {
    const snap = this.snap;
    const id = this.nextId();
    const t0 = this.logger === undefined ? 0 : performance.now();
    let connector: string | null = null;
    let d: Decision;
    try {
      if (!isStage(stage)) throw new EngineError('ENGINE_STAGE_UNKNOWN', `unknown stage ${JSON.stringify(String(stage)).slice(0, 40)} (one of connect, ehlo, auth, mail, rcpt, headers, eom)`);
      const input = SessionInput.fromFacts(facts as Facts);
      const cached = snap.cache ? snap.sessionDoc(input) : null;
      connector = cached?.doc.connector ?? null;
      d = snap.evaluate(stage, facts as Facts, input, cached, id, options.explain === true);
    } catch (e) {
      d = snap.failSafe(id, isStage(stage) ? stage : 'mail', e, connector);
    }
    this.log(d, t0);
    return d as DecisionFor<S>;
  }

  /** Log a failure that no decision carries (its code and message only: no facts, no secrets). */
  private fault(what: string, e: unknown, bindings: object): void {
    const err = e instanceof MtaPolicyError ? { code: e.code, message: e.message } : { code: 'ENGINE_EVAL_FAILED', message: e instanceof Error ? e.message : String(e) };
    this.logger?.error({ ...bindings, err }, what);
  }

  /** Log one decision (and the cause of a failure). */
  private log(d: Decision, t0: number, bindings: object = {}): void {
    if (this.logger === undefined) return;
    const line = { ...bindings, decision: d.id, stage: d.stage, connector: d.connector, verdict: d.decision, reason: d.reason, code: d.reply.code, ms: Number((performance.now() - t0).toFixed(3)) };
    if (d.error !== undefined) this.logger.error({ ...line, err: d.error }, 'engine failure: tempfail');
    else this.logger.info(line, 'decision');
  }
}

function snapshot(config: Config, bundle: LoadedBundle, policy: WasmPolicy, cache: boolean): Snapshot {
  const data = compileData(config);
  policy.setData(data);
  if (!policy.entrypoints.includes('mta/session')) {
    throw new EngineError('ENGINE_BUNDLE_ENTRYPOINTS', `${bundle.dir}: bundle lacks entrypoint mta/session`);
  }
  return new Snapshot(config, bundle, policy, data.config, cache);
}
