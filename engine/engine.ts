import { randomBytes } from 'node:crypto';
import { readBundle, type LoadedBundle, type Manifest } from './bundle.js';
import type { Config } from './config/types.js';
import { compileData, type PolicyData } from './data.js';
import { parseDecision } from './decision.js';
import { MtaPolicyError } from './errors.js';
import { buildInput, clientIp, type PolicyInput } from './input.js';
import { REPLY_CATALOGUE } from './replies.js';
import type { Decision, Facts, Stage } from './types.js';
import { loadWasmPolicy, type WasmPolicy } from './wasm.js';

export interface EngineOptions {
  readonly config: Config;
  /** A bundle directory (default: the shipped policies/dist), or an already read bundle. */
  readonly bundle?: string | LoadedBundle;
}

export interface DecideOptions {
  /** Include every failing check and the connector choice in the decision. */
  readonly explain?: boolean;
}

/**
 * The policy engine: one compiled policy, one configuration, one question per SMTP stage.
 * `decide` never throws and never fails open: any failure becomes a tempfail decision
 * carrying the error's code.
 */
export class Engine {
  readonly config: Config;
  readonly manifest: Manifest;
  readonly data: PolicyData;
  private readonly policy: WasmPolicy;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private counter = 0;

  private constructor(config: Config, manifest: Manifest, policy: WasmPolicy, data: PolicyData) {
    this.config = config;
    this.manifest = manifest;
    this.policy = policy;
    this.data = data;
  }

  static async create(options: EngineOptions): Promise<Engine> {
    const bundle = typeof options.bundle === 'object' ? options.bundle : await readBundle(options.bundle);
    const policy = loadWasmPolicy(bundle.wasm);
    const data = compileData(options.config);
    policy.setData(data);
    return new Engine(options.config, bundle.manifest, policy, data.config);
  }

  /** Decide one stage. Never throws: failures become a tempfail with `error` set. */
  decide(stage: Stage, facts: Facts, options: DecideOptions = {}): Decision {
    const id = `${this.idPrefix}-${(++this.counter).toString(36)}`;
    let input: PolicyInput | null = null;
    try {
      input = buildInput(stage, facts, { explain: options.explain === true });
      const result = this.policy.evaluate(`mta/${stage}`, input);
      const connector = firstConnector(result);
      return parseDecision(stage, result, {
        id,
        fqdn: (connector === null ? undefined : this.data.connectors[connector]?.fqdn) ?? this.data.server.fqdn,
        clientIp: clientIp(facts),
      });
    } catch (e) {
      return this.failSafe(id, stage, e);
    }
  }

  /** The decision used when the engine itself fails: a temporary failure, never an accept. */
  private failSafe(id: string, stage: Stage, e: unknown): Decision {
    const error =
      e instanceof MtaPolicyError
        ? { code: e.code, message: e.message }
        : { code: 'ENGINE_EVAL_FAILED', message: e instanceof Error ? e.message : String(e) };
    const reason = stage === 'connect' ? 'engine_error_connect' : 'engine_error';
    // The configured wording when the data has it (overrides are validated to be 4xx).
    const r = this.data.replies[this.data.server.dialect === 'rfc' ? 'rfc' : 'exchange'][reason] ?? REPLY_CATALOGUE[reason].exchange;
    return {
      id,
      stage,
      decision: stage === 'connect' ? 'disconnect' : 'tempfail',
      reason,
      reply: { code: r.code, enhanced: r.enhanced, text: r.text },
      connector: null,
      principals: [],
      rights: [],
      error,
    };
  }
}

function firstConnector(result: unknown): string | null {
  if (!Array.isArray(result)) return null;
  const r = (result[0] as { result?: { connector?: unknown } } | undefined)?.result?.connector;
  return typeof r === 'string' ? r : null;
}

