import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineError } from './errors.js';
import { STAGES } from './types.js';

/**
 * The compiled policy bundle: `policy.wasm` + `manifest.json`. The default bundle is committed
 * in policies/dist so the program runs without opa; the manifest records the OPA version and a
 * digest of the Rego sources and capabilities, so a stale bundle is refused at load time and
 * CI can rebuild and compare. Building needs opa and lives in engine/build.ts.
 */

/** `mta/session` (the session document) and one entrypoint per stage. */
export const ENTRYPOINTS = ['mta/session', ...STAGES.map((s) => `mta/${s}`)];

export interface Manifest {
  readonly format: 1;
  readonly opa_version: string;
  readonly entrypoints: readonly string[];
  readonly wasm_sha256: string;
  /** Digest of the shipped policy sources (policies/**.rego without tests, capabilities.json). */
  readonly sources_sha256: string;
  /** Extra Rego directories compiled in (`mta-policy build --policy DIR`), with their digests. */
  readonly extra_sources: readonly { readonly dir: string; readonly sha256: string }[];
}

export interface LoadedBundle {
  readonly dir: string;
  readonly wasm: Uint8Array;
  readonly manifest: Manifest;
}

/** The package root (holds package.json), found from this file in both engine/ and dist/engine/. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'mta-policy') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new EngineError('ENGINE_BUNDLE_MISSING', 'cannot locate the mta-policy package root');
    dir = parent;
  }
}

export const shippedPolicyDir = (): string => join(projectRoot(), 'policies');
export const defaultBundleDir = (): string => join(projectRoot(), 'policies', 'dist');
export const capabilitiesFile = (): string => join(shippedPolicyDir(), 'capabilities.json');

/** The OPA version the shipped bundle is built with (package.json `mtaPolicy.opaVersion`). */
export function pinnedOpaVersion(): string {
  const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { mtaPolicy?: { opaVersion?: string } };
  return pkg.mtaPolicy?.opaVersion ?? 'unknown';
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

export async function regoFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'dist' && !entry.name.startsWith('.')) out.push(...(await regoFiles(path)));
    } else if (entry.name.endsWith('.rego') && !entry.name.endsWith('_test.rego')) {
      out.push(path);
    }
  }
  return out;
}

/**
 * Digest of a policy directory: for each non-test .rego file (and `extraFiles`) in path order,
 * `relative-path NUL sha256(content) LF`, hashed.
 */
export async function digestSources(dir: string, extraFiles: readonly string[] = []): Promise<string> {
  const files = [...(await regoFiles(dir)), ...extraFiles.filter((f) => existsSync(f))];
  const lines = await Promise.all(
    files.map(async (f) => `${relative(dir, f).split(sep).join('/')}\0${sha256(await readFile(f))}\n`),
  );
  return sha256(lines.sort().join(''));
}

export const digestShippedSources = (): Promise<string> => digestSources(shippedPolicyDir(), [capabilitiesFile()]);

export function parseManifest(text: string, file: string): Manifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new EngineError('ENGINE_BUNDLE_CORRUPT', `${file} is not valid JSON`, { cause: e });
  }
  const ok =
    typeof m === 'object' &&
    m !== null &&
    (m as Manifest).format === 1 &&
    typeof (m as Manifest).opa_version === 'string' &&
    Array.isArray((m as Manifest).entrypoints) &&
    typeof (m as Manifest).wasm_sha256 === 'string' &&
    typeof (m as Manifest).sources_sha256 === 'string' &&
    Array.isArray((m as Manifest).extra_sources);
  if (!ok) throw new EngineError('ENGINE_BUNDLE_CORRUPT', `${file} is not an mta-policy bundle manifest`);
  return m as Manifest;
}

/**
 * Read and verify a bundle: files present, wasm matches its recorded hash, every stage
 * entrypoint present, and (where the sources are at hand) not stale.
 */
export async function readBundle(dir: string = defaultBundleDir()): Promise<LoadedBundle> {
  const wasmFile = join(dir, 'policy.wasm');
  const manifestFile = join(dir, 'manifest.json');
  if (!existsSync(wasmFile) || !existsSync(manifestFile)) {
    throw new EngineError(
      'ENGINE_BUNDLE_MISSING',
      `no policy bundle in ${dir} (expected policy.wasm and manifest.json; build one with \`mta-policy build\`)`,
    );
  }
  const manifest = parseManifest(await readFile(manifestFile, 'utf8'), manifestFile);
  const wasm = new Uint8Array(await readFile(wasmFile));
  if (sha256(wasm) !== manifest.wasm_sha256) {
    throw new EngineError('ENGINE_BUNDLE_CORRUPT', `${wasmFile} does not match the hash in its manifest (corrupt or replaced)`);
  }
  const missing = ENTRYPOINTS.filter((e) => !manifest.entrypoints.includes(e));
  if (missing.length > 0) {
    throw new EngineError('ENGINE_BUNDLE_ENTRYPOINTS', `${dir}: bundle lacks entrypoints ${missing.join(', ')}`);
  }
  if (existsSync(shippedPolicyDir()) && existsSync(capabilitiesFile())) {
    if ((await digestShippedSources()) !== manifest.sources_sha256) {
      throw new EngineError(
        'ENGINE_BUNDLE_STALE',
        `${dir} was built from other policy sources than ${shippedPolicyDir()} holds now; rebuild it (npm run policies:build, or mta-policy build)`,
      );
    }
  }
  for (const extra of manifest.extra_sources) {
    if (existsSync(extra.dir) && (await digestSources(extra.dir)) !== extra.sha256) {
      throw new EngineError('ENGINE_BUNDLE_STALE', `${dir}: the Rego in ${extra.dir} changed since the bundle was built; rebuild it`);
    }
  }
  return { dir, wasm, manifest };
}

