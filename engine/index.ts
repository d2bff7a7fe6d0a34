/**
 * mta-policy's engine: the one seam adapters and the CLI use.
 *
 *   const engine = await Engine.create({ config: await loadConfig(file) });
 *   const decision = engine.decide('rcpt', facts);
 */
export { Engine, type DecideOptions, type EngineOptions } from './engine.js';
export { loadConfig, parseConfig } from './config/load.js';
export type { Config } from './config/types.js';
export { readBundle, buildBundle, checkCommittedBundle, findOpa, defaultBundleDir, type Manifest } from './bundle.js';
export { ConfigError, EngineError, BuildError, MtaPolicyError, formatIssue, type ConfigIssue } from './errors.js';
export { STAGES, isStage } from './types.js';
export type * from './types.js';
