import type { Io } from '../program.js';
import { EXIT } from '../program.js';
import { openEngine } from './common.js';

/** `mta-policy check`: the config validates, the bundle loads, and they work together. */
export async function checkCommand(opts: { config: string; bundle?: string }, io: Io): Promise<number> {
  const engine = await openEngine(opts);
  const c = engine.config;
  const enabled = c.connectors.filter((x) => x.enabled).length;
  io.stdout.write(
    `ok: ${opts.config}: ${enabled} connector${enabled === 1 ? '' : 's'} enabled (${c.connectors.length} defined), ` +
      `${c.acceptedDomains.length} accepted domain${c.acceptedDomains.length === 1 ? '' : 's'}, ` +
      `${c.users.length} user${c.users.length === 1 ? '' : 's'}; policy bundle built with opa ${engine.manifest.opa_version}\n`,
  );
  return EXIT.ok;
}
