import { checkScenario } from '../scenarios/run.js';
import { loadScenarios } from '../scenarios/parse.js';
import type { Io } from '../program.js';
import { EXIT } from '../program.js';
import { openEngine } from './common.js';

/**
 * `mta-policy test`: run scenario files. One line per failing case with the difference, then
 * `N passed, N failed`; exit 1 on any failure.
 */
export async function testCommand(opts: { config: string; cases: string[]; bundle?: string }, io: Io): Promise<number> {
  const engine = await openEngine(opts);
  const scenarios = (await Promise.all(opts.cases.map((f) => loadScenarios(f)))).flat();
  let passed = 0;
  let failed = 0;
  for (const s of scenarios) {
    const diffs = await checkScenario(engine, s);
    if (diffs.length === 0) {
      passed++;
    } else {
      failed++;
      io.stdout.write(`FAIL ${s.file}:${s.line} ${JSON.stringify(s.name)}: ${diffs.join('; ')}\n`);
    }
  }
  io.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 && scenarios.length > 0 ? EXIT.ok : EXIT.failure;
}
