import type { Io } from '../program.js';
import { EXIT } from '../program.js';
import { formatListen, fromSocketAddress } from '../../adapters/shared/listen.js';
import type { Config } from '../../engine/config/types.js';
import type { ListenerSpec } from '../../engine/listeners.js';
import { openEngine } from './common.js';

/**
 * Who serves SMTP for the connectors (issue 7: `check` says which connectors the native
 * listener serves): the MTA in front through the milter / policy service, or mta-policy's own
 * submission listener on the bindings of connectors with `listen`.
 */
export function servedLine(config: Config, listeners: readonly ListenerSpec[]): string {
  const own = listeners.filter((l) => l.listen);
  const adapters = [config.milter ? `milter on ${formatListen(fromSocketAddress(config.milter.listen))}` : null, config.postfixPolicy ? `policy service on ${formatListen(fromSocketAddress(config.postfixPolicy.listen))}` : null].filter((x) => x !== null);
  const byConnector = new Map<string, string[]>();
  for (const l of own) byConnector.set(l.connector, [...(byConnector.get(l.connector) ?? []), `${l.binding}${l.implicitTls ? ' implicit TLS' : ''}`]);
  const native =
    own.length === 0
      ? 'native listener: no connector (every binding belongs to the MTA in front)'
      : `native listener: ${[...byConnector].map(([name, bindings]) => `${name} (${bindings.join(', ')})`).join('; ')}`;
  return adapters.length === 0 ? native : `${adapters.join(', ')}; ${native}`;
}

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
  io.stdout.write(`${servedLine(engine.config, engine.listeners)}\n`);
  return EXIT.ok;
}
