/**
 * The only file that imports the OPA WASM SDK. It throws strings and plain objects; here they
 * become EngineErrors, and nothing else in the project sees the SDK.
 */
import * as opaModule from '@open-policy-agent/opa-wasm';
import type { LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { EngineError } from './errors.js';

// The package's ESM entry exports only `loadPolicy` by name and the whole SDK as `default`,
// while its type declarations describe named exports and no default: bridge both here.
const sdk = ((opaModule as { default?: typeof opaModule }).default ?? opaModule) as typeof opaModule;

/** WASM memory pages (64 KiB each): room for large configs, a hard ceiling for runaway input. */
const MEMORY = { initial: 64, maximum: 8192 } as const;

export interface WasmPolicy {
  readonly entrypoints: readonly string[];
  setData(data: unknown): void;
  /**
   * The raw result set (`[{result}]`, or `[]` when undefined) for an input given as JSON text
   * (the engine assembles it from cached fragments) or as an object. Throws EngineError.
   */
  evaluate(entrypoint: string, input: string | object): unknown;
}

function describe(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (typeof thrown === 'object' && thrown !== null && 'message' in thrown) return String(thrown.message);
  return String(thrown);
}

/** Host-implemented builtins the module imports: must be none (we provide none). */
function requiredBuiltins(policy: LoadedPolicy): string[] {
  const exports = (policy.wasmInstance as unknown as { exports: Record<string, unknown> }).exports;
  const builtins = exports['builtins'];
  const dump = exports['opa_json_dump'];
  if (typeof builtins !== 'function' || typeof dump !== 'function') return [];
  const addr = (dump as (a: number) => number)((builtins as () => number)());
  const bytes = new Uint8Array((policy.mem as unknown as { buffer: ArrayBuffer }).buffer);
  let end = addr;
  while (end < bytes.length && bytes[end] !== 0) end++;
  const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes.subarray(addr, end)));
  return typeof parsed === 'object' && parsed !== null ? Object.keys(parsed) : [];
}

const encoder = new TextEncoder();

/** JSON text as the SDK's pre-serialised input form (an ArrayBuffer of exactly the UTF-8 bytes). */
function jsonBytes(text: string): ArrayBuffer {
  const bytes = encoder.encode(text);
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
}

function wrap(policy: LoadedPolicy): WasmPolicy {
  const missing = requiredBuiltins(policy);
  if (missing.length > 0) {
    throw new EngineError(
      'ENGINE_BUNDLE_BUILTINS',
      `policy.wasm needs builtins the WASM runtime lacks: ${missing.join(', ')} (build with policies/capabilities.json)`,
    );
  }
  const entrypoints = Object.keys(policy.entrypoints as Record<string, number>);
  return {
    entrypoints,
    setData(data: unknown): void {
      try {
        policy.setData(data as object);
      } catch (e) {
        throw new EngineError('ENGINE_LOAD_FAILED', `loading policy data failed: ${describe(e)}`, { cause: e });
      }
    },
    evaluate(entrypoint: string, input: string | object): unknown {
      try {
        return policy.evaluate(typeof input === 'string' ? jsonBytes(input) : input, entrypoint);
      } catch (e) {
        throw new EngineError('ENGINE_EVAL_FAILED', `policy evaluation failed: ${describe(e)}`, { cause: e });
      }
    },
  };
}

export function loadWasmPolicy(bytes: Uint8Array): WasmPolicy {
  let policy: LoadedPolicy;
  try {
    policy = sdk.loadPolicySync(bytes, MEMORY);
  } catch (e) {
    throw new EngineError('ENGINE_BUNDLE_CORRUPT', `policy.wasm cannot be loaded: ${describe(e)}`, { cause: e });
  }
  return wrap(policy);
}

/** As loadWasmPolicy, compiling off the main thread's critical path (used by reload). */
export async function loadWasmPolicyAsync(bytes: Uint8Array): Promise<WasmPolicy> {
  let policy: LoadedPolicy;
  try {
    policy = await sdk.loadPolicy(bytes, MEMORY);
  } catch (e) {
    throw new EngineError('ENGINE_BUNDLE_CORRUPT', `policy.wasm cannot be loaded: ${describe(e)}`, { cause: e });
  }
  return wrap(policy);
}
