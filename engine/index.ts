/**
 * mta-policy's engine: the run-time API adapters and the CLI use.
 *
 *   const engine = await Engine.create({ config: await loadConfig(file), logger });
 *   const session = engine.session({ local: '192.0.2.10:25', remote: '198.51.100.7' });
 *   const d = await session.connect();   // then helo, starttls, auth, mail, rcpt, headers, eom
 *
 * Bundle building (needs opa) is not here: import engine/build.js.
 */
export { Engine, type DecideOptions, type EngineLogger, type EngineOptions } from './engine.js';
export { Session, type SessionInit, type SessionOptions } from './session.js';
export { MemoryCounters, RATE_WINDOW_MS, type ConnectionCounts, type ConnectionKey, type Counters } from './counters.js';
export { loadConfig, parseConfig } from './config/load.js';
export type { Config } from './config/types.js';
export { readBundle, defaultBundleDir, type Manifest } from './bundle.js';
export { ConfigError, EngineError, MtaPolicyError, formatIssue, type ConfigIssue } from './errors.js';
export { FLAG_HEADERS, OWN_HEADER_PREFIX } from './headers.js';
export { INPUT_LIMITS } from './input.js';
export type { ListenerSpec } from './listeners.js';
export { REPLY_CATALOGUE, REASONS } from './replies.js';
export { DECISION_KINDS, STAGES, isStage } from './types.js';
export type * from './types.js';
