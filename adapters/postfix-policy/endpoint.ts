/**
 * The policy server's listen address: the configuration's `postfix_policy.listen`
 * (`inet:PORT@HOST` or `unix:/path`, parsed by engine/config/endpoints.ts into a
 * `SocketAddress`), and the same endpoint as Postfix's `check_policy_service` writes it. Pure.
 */
import { parseListen as parseConfigListen, type SocketAddress } from '../../engine/config/endpoints.js';
import { isParseFailure } from '../../engine/ip.js';
import { PolicyServerError } from './errors.js';

export type { SocketAddress };

/**
 * `inet:PORT@HOST` / `unix:/path` (the configuration's syntax) → a `SocketAddress`. Throws
 * `PolicyServerError('POLICY_LISTEN_FAILED')` naming the problem and the fix.
 */
export function parseListen(text: string): SocketAddress {
  const r = parseConfigListen(text);
  if (isParseFailure(r)) throw new PolicyServerError('POLICY_LISTEN_FAILED', `${r.error}${r.fix === undefined || r.fix === '' ? '' : `: ${r.fix}`}`);
  return r;
}

/** Our own syntax, for log lines: `inet:10040@127.0.0.1`, `inet:10040@[::1]`, `unix:/path`. */
export function formatListen(a: SocketAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `inet:${a.port}@[${a.host}]` : `inet:${a.port}@${a.host}`;
}

/** What goes after `check_policy_service` in main.cf: `inet:127.0.0.1:10040`, `inet:[::1]:10040`, `unix:/path`. */
export function postfixEndpoint(a: SocketAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `inet:[${a.host}]:${a.port}` : `inet:${a.host}:${a.port}`;
}
