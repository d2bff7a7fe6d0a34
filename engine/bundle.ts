import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { BuildError, EngineError } from './errors.js';
import { STAGES } from './types.js';

/**
 * The compiled policy bundle: `policy.wasm` + `manifest.json`. The default bundle is committed
 * in policies/dist so the program runs without opa; the manifest records the OPA version and a
 * digest of the Rego sources and capabilities, so a stale bundle is refused at load time and
 * CI can rebuild and compare.
 */

export const ENTRYPOINTS = STAGES.map((s) => `mta/${s}`);

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

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function regoFiles(dir: string): Promise<string[]> {
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

function parseManifest(text: string, file: string): Manifest {
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

// --- building (needs opa) -----------------------------------------------------------------------

const run = promisify(execFile);

/** The opa binary: $MTA_POLICY_OPA, the project's pinned tools folder, or `opa` on PATH. */
export function findOpa(): string | null {
  const fromEnv = process.env['MTA_POLICY_OPA'];
  if (fromEnv !== undefined && fromEnv !== '') return existsSync(fromEnv) ? fromEnv : null;
  const pinned = join(projectRoot(), '.tools', `opa-${pinnedOpaVersion()}`, 'opa');
  if (existsSync(pinned)) return pinned;
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'opa'))) return join(dir, 'opa');
  }
  return null;
}

export async function opaVersion(opa: string): Promise<string> {
  const { stdout } = await run(opa, ['version']);
  const m = /^Version:\s*(\S+)/m.exec(stdout);
  return m?.[1] === undefined ? 'unknown' : `v${m[1].replace(/^v/, '')}`;
}

export interface BuildOptions {
  /** Extra Rego directories (e.g. `package mta.ext` rules) compiled with the shipped policy. */
  readonly extraDirs?: readonly string[];
  readonly outDir: string;
  readonly opa?: string;
}

/** Compile the shipped policy (plus extra Rego) into `outDir/policy.wasm` + `manifest.json`. */
export async function buildBundle(options: BuildOptions): Promise<Manifest> {
  const opa = options.opa ?? findOpa();
  if (opa === null) {
    throw new BuildError(
      'BUILD_OPA_MISSING',
      `opa not found: run scripts/test.sh once (installs the pinned ${pinnedOpaVersion()} into .tools/), or set MTA_POLICY_OPA to an opa binary`,
    );
  }
  const extraDirs = (options.extraDirs ?? []).map((d) => resolve(d));
  for (const d of extraDirs) if (!existsSync(d)) throw new BuildError('BUILD_POLICY_DIR', `policy directory ${d} does not exist`);
  for (const d of extraDirs) await checkExtensionPackages(d);
  const work = await mkdtemp(join(tmpdir(), 'mta-policy-build-'));
  try {
    const bundleFile = join(work, 'bundle.tar.gz');
    const args = ['build', '-t', 'wasm', '-O=0', '--capabilities', capabilitiesFile(), '--ignore', '*_test.rego'];
    for (const e of ENTRYPOINTS) args.push('-e', e);
    // policy.wasm embeds source locations: build from the package root with a relative path so
    // the shipped bundle is byte-identical in every checkout.
    args.push('-o', bundleFile, join('policies', 'mta'), ...extraDirs);
    try {
      await run(opa, args, { maxBuffer: 16 * 1024 * 1024, cwd: projectRoot() });
    } catch (e) {
      // opa prints "N errors occurred:" then one "file:line: rego_…_error: …" per line.
      const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
      const lines = `${stderr}\n${stdout}`.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^\d+ errors? occurred/.test(l));
      throw new BuildError('BUILD_REGO_ERROR', `opa build failed: ${lines.join('; ') || String(e)}`, { cause: e });
    }
    await tar.x({ file: bundleFile, cwd: work, filter: (p) => p.replace(/^\/+/, '') === 'policy.wasm' });
    const wasm = await readFile(join(work, 'policy.wasm'));
    const manifest: Manifest = {
      format: 1,
      opa_version: await opaVersion(opa),
      entrypoints: ENTRYPOINTS,
      wasm_sha256: sha256(wasm),
      sources_sha256: await digestShippedSources(),
      extra_sources: await Promise.all(extraDirs.map(async (dir) => ({ dir, sha256: await digestSources(dir) }))),
    };
    await mkdir(options.outDir, { recursive: true });
    await writeFile(join(options.outDir, 'policy.wasm'), wasm);
    await writeFile(join(options.outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Extension Rego may only add denies: every module must be `package mta.ext` (or below it).
 * A module in `package mta` could redefine the policy's own rules and grant what it refuses.
 */
async function checkExtensionPackages(dir: string): Promise<void> {
  for (const file of await regoFiles(dir)) {
    const text = await readFile(file, 'utf8');
    const m = /^[ \t]*package[ \t]+(\S+)/m.exec(text);
    const pkg = m?.[1] ?? '(none)';
    if (pkg !== 'mta.ext' && !pkg.startsWith('mta.ext.')) {
      const line = m === null ? 1 : text.slice(0, m.index).split('\n').length;
      throw new BuildError(
        'BUILD_EXTENSION_PACKAGE',
        `${file}:${line}: package ${pkg}: extension Rego must be in package mta.ext (extensions can only add denies)`,
      );
    }
  }
}

/**
 * CI's staleness check: rebuild the shipped bundle with the pinned opa and compare it with the
 * committed one byte for byte. Returns the problems found (empty = current).
 */
export async function checkCommittedBundle(opa?: string): Promise<string[]> {
  const binary = opa ?? findOpa();
  if (binary === null) throw new BuildError('BUILD_OPA_MISSING', 'opa not found (needed to rebuild and compare the bundle)');
  const problems: string[] = [];
  const version = await opaVersion(binary);
  if (version !== pinnedOpaVersion()) problems.push(`opa is ${version}, the pinned version is ${pinnedOpaVersion()}`);
  const committedDir = defaultBundleDir();
  let committed: Manifest | null = null;
  try {
    committed = parseManifest(await readFile(join(committedDir, 'manifest.json'), 'utf8'), 'manifest.json');
  } catch (e) {
    problems.push(`committed manifest unreadable: ${(e as Error).message}`);
  }
  const work = await mkdtemp(join(tmpdir(), 'mta-policy-check-'));
  try {
    const fresh = await buildBundle({ outDir: work, opa: binary });
    if (committed !== null) {
      if (committed.sources_sha256 !== fresh.sources_sha256) problems.push('policy sources changed since policies/dist was built');
      if (committed.wasm_sha256 !== fresh.wasm_sha256) problems.push('policies/dist/policy.wasm differs from a fresh build');
      if (committed.opa_version !== fresh.opa_version) problems.push(`committed bundle was built with opa ${committed.opa_version}`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return problems;
}
