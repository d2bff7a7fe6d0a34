import { resolve } from 'node:path';
import { defaultBundleDir } from '../../engine/bundle.js';
import { buildBundle, checkCommittedBundle } from '../../engine/build.js';
import { BuildError } from '../../engine/errors.js';
import type { Io } from '../program.js';
import { EXIT } from '../program.js';

/** `mta-policy build`: compile with opa; `--check` compares the committed shipped bundle. */
export async function buildCommand(opts: { policy?: string[]; out: string; check?: boolean }, io: Io): Promise<number> {
  if (opts.check === true) {
    const problems = await checkCommittedBundle();
    if (problems.length > 0) {
      throw new BuildError('BUILD_STALE', `${defaultBundleDir()} is stale: ${problems.join('; ')} (run npm run policies:build and commit)`);
    }
    io.stdout.write(`ok: ${defaultBundleDir()} matches a fresh build of the policy sources\n`);
    return EXIT.ok;
  }
  const outDir = resolve(opts.out);
  const manifest = await buildBundle({ outDir, extraDirs: opts.policy ?? [] });
  io.stdout.write(
    `built ${outDir}/policy.wasm with opa ${manifest.opa_version} (${manifest.entrypoints.length} entrypoints` +
      `${manifest.extra_sources.length > 0 ? `, extra: ${manifest.extra_sources.map((x) => x.dir).join(', ')}` : ''})\n`,
  );
  return EXIT.ok;
}
