/**
 * Milter listen addresses: the shared syntax of adapters/shared/listen.ts (libmilter's
 * `inet:PORT@HOST`, `inet6:PORT@HOST`, `unix:/path`), raising the milter's own error. Pure.
 */
import { isParseFailure } from '../../engine/ip.js';
import { parseListen as parseAddress, type ListenAddress } from '../shared/listen.js';
import { MilterUsageError } from './errors.js';

export { formatListen, postfixEndpoint, type ListenAddress } from '../shared/listen.js';

/** Parse a listen address (see adapters/shared/listen.ts). Throws `MilterUsageError('MILTER_OPTION_INVALID')`. */
export function parseListen(spec: string): ListenAddress {
  const r = parseAddress(spec);
  if (isParseFailure(r)) throw new MilterUsageError('MILTER_OPTION_INVALID', `invalid milter listen address ${JSON.stringify(spec)}: ${r.error} (${r.fix ?? ''})`);
  return r;
}
