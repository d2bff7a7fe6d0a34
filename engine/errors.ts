/**
 * Every error this project throws is an `Error` subclass with a stable `code`.
 * Codes are usable as log fields and metric labels; messages are for people.
 */
export class MtaPolicyError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem in a configuration file, located as precisely as the source allows. */
export interface ConfigIssue {
  readonly file: string;
  /** 1-based line, when known. */
  readonly line?: number;
  /** 1-based column, when known. */
  readonly column?: number;
  /** Key path in the document, e.g. `connectors[2].remote_ip_ranges[0]`. */
  readonly path: string;
  readonly message: string;
  /** How to fix it, in one sentence. */
  readonly fix?: string;
}

export function formatIssue(i: ConfigIssue): string {
  const where = i.line === undefined ? i.file : `${i.file}:${i.line}${i.column === undefined ? '' : `:${i.column}`}`;
  const key = i.path === '' ? '' : ` ${i.path}:`;
  const fix = i.fix === undefined ? '' : ` (${i.fix})`;
  return `${where}:${key} ${i.message}${fix}`;
}

/** The configuration is unreadable or invalid. `issues` lists every problem found. */
export class ConfigError extends MtaPolicyError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    const first = issues[0];
    const head = first === undefined ? 'invalid configuration' : formatIssue(first);
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super('CONFIG_INVALID', head + more, options);
    this.issues = issues;
  }
}

export type EngineErrorCode =
  | 'ENGINE_BUNDLE_MISSING'
  | 'ENGINE_BUNDLE_CORRUPT'
  | 'ENGINE_BUNDLE_STALE'
  | 'ENGINE_BUNDLE_ENTRYPOINTS'
  | 'ENGINE_BUNDLE_BUILTINS'
  | 'ENGINE_LOAD_FAILED'
  | 'ENGINE_EVAL_FAILED'
  | 'ENGINE_DECISION_UNDEFINED'
  | 'ENGINE_DECISION_MULTIPLE'
  | 'ENGINE_DECISION_MALFORMED'
  | 'ENGINE_INPUT_INVALID'
  | 'ENGINE_STAGE_UNKNOWN'
  | 'ENGINE_SESSION_SEQUENCE';

/** The policy engine could not produce a valid decision. Adapters turn this into a tempfail. */
export class EngineError extends MtaPolicyError {
  declare readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Building a policy bundle failed (opa missing, Rego compile error, …). */
export class BuildError extends MtaPolicyError {}
