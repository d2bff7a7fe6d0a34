import { MtaPolicyError } from '../../engine/errors.js';
import type { Facts, Stage } from '../../engine/types.js';
import { explainDecision } from '../explain.js';
import type { Io } from '../program.js';
import { EXIT } from '../program.js';
import { openEngine, readJsonFile } from './common.js';

/** `mta-policy eval`: one stage, one facts file, the decision as JSON (or in words). */
export async function evalCommand(
  opts: { config: string; stage: Stage; input: string; explain?: boolean; bundle?: string },
  io: Io,
): Promise<number> {
  const engine = await openEngine(opts);
  const facts = await readJsonFile(opts.input);
  if (typeof facts !== 'object' || facts === null || Array.isArray(facts)) {
    throw new MtaPolicyError('INPUT_INVALID', `${opts.input}: facts must be a JSON object (see README, "Facts")`);
  }
  const decision = engine.decide(opts.stage, facts as Facts, { explain: opts.explain === true });
  if (decision.error?.code === 'ENGINE_INPUT_INVALID') {
    throw new MtaPolicyError('INPUT_INVALID', `${opts.input}: ${decision.error.message}`);
  }
  io.stdout.write(opts.explain === true ? explainDecision(decision) : `${JSON.stringify(decision, null, 2)}\n`);
  return EXIT.ok;
}
