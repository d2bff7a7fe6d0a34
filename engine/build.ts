/**
 * Building policy bundles with opa: build tooling, not run-time code (engine/index.ts does not
 * export it; `mta-policy build` and the tests import it from here).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import {
  capabilitiesFile,
  defaultBundleDir,
  digestShippedSources,
  digestSources,
  ENTRYPOINTS,
  parseManifest,
  pinnedOpaVersion,
  projectRoot,
  regoFiles,
  sha256,
  type Manifest,
} from './bundle.js';
import { BuildError } from './errors.js';

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
