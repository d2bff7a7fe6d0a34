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
const decoder = new TextDecoder();

/** JSON text as the SDK's pre-serialised input form (an ArrayBuffer of exactly the UTF-8 bytes). */
function jsonBytes(text: string): ArrayBuffer {
  const bytes = encoder.encode(text);
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
}

type OpaEval = (reserved: number, entrypoint: number, dataAddr: number, inputAddr: number, inputLen: number, heapPtr: number, format: number) => number;

/**
 * `policy.evaluate(jsonBytes(text), entrypoint)` for ABI ≥ 1.2 modules, step for step as the
 * SDK's fast path does it (src/opa.js `evaluate`: the input's UTF-8 bytes at `dataHeapPtr`,
 * memory grown by whole pages to hold them, one `opa_eval`, the NUL-terminated result JSON
 * parsed), but encoding straight into linear memory and reusing one decoder: the SDK allocates
 * an encoder, a copy of the input and a decoder per call. Null when the module or entrypoint
 * does not take this path (the caller then uses the SDK).
 */
function fastEvaluate(policy: LoadedPolicy): ((entrypoint: string, text: string) => unknown) | null {
  const exports = (policy.wasmInstance as unknown as { exports: Record<string, unknown> }).exports;
  const opaEval = exports['opa_eval'];
  if (!(Number(policy.minorVersion) >= 2) || typeof opaEval !== 'function') return null;
  const ids = policy.entrypoints as Record<string, number>;
  return (entrypoint, text) => {
    const id = Object.hasOwn(ids, entrypoint) ? ids[entrypoint] : undefined;
    if (id === undefined) return policy.evaluate(jsonBytes(text), entrypoint);
    const mem = policy.mem;
    const at = policy.dataHeapPtr as number;
    const length = Buffer.byteLength(text, 'utf8');
    const delta = at + length - mem.buffer.byteLength;
    if (delta > 0) mem.grow(Math.ceil(delta / 65536));
    encoder.encodeInto(text, new Uint8Array(mem.buffer, at, length));
    const result = (opaEval as OpaEval)(0, id, policy.dataAddr, at, length, at + length, 0);
    const bytes = new Uint8Array(mem.buffer);
    const end = bytes.indexOf(0, result);
    return JSON.parse(decoder.decode(bytes.subarray(result, end < 0 ? bytes.length : end))) as unknown;
  };
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
  const fast = fastEvaluate(policy);
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
        if (typeof input !== 'string') return policy.evaluate(input, entrypoint);
        return fast === null ? policy.evaluate(jsonBytes(input), entrypoint) : fast(entrypoint, input);
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
