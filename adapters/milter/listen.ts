/**
 * Milter listen addresses in libmilter's `smfi_setconn` syntax (also Sendmail's `S=`):
 * `inet:PORT@HOST`, `inet6:PORT@HOST` and `unix:/path` (`local:/path` is a synonym). Postfix
 * writes the same endpoints as `inet:HOST:PORT` / `unix:/path` in `smtpd_milters`;
 * {@link postfixEndpoint} renders that form for documentation and log lines. Pure.
 */
import { isAbsolute } from 'node:path';
import { parseIp } from '../../engine/ip.js';
import { MilterUsageError } from './errors.js';

/** A parsed listen address. `port` 0 asks the OS for a free port (tests). */
export type ListenAddress =
  | { readonly transport: 'inet'; readonly host: string; readonly family: 4 | 6; readonly port: number }
  | { readonly transport: 'unix'; readonly path: string };

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function invalid(spec: string, why: string): MilterUsageError {
  return new MilterUsageError('MILTER_OPTION_INVALID', `invalid milter listen address ${JSON.stringify(spec)}: ${why} (use inet:PORT@HOST, inet6:PORT@HOST or unix:/path)`);
}

/**
 * Parse a listen address. The host is required (no silent wildcard): an IPv4 or IPv6 literal
 * (brackets optional) or `localhost`. Throws `MilterUsageError('MILTER_OPTION_INVALID')`.
 */
export function parseListen(spec: string): ListenAddress {
  const colon = spec.indexOf(':');
  if (colon < 0) throw invalid(spec, 'no transport');
  const transport = spec.slice(0, colon).toLowerCase();
  const rest = spec.slice(colon + 1);
  if (transport === 'unix' || transport === 'local') {
    if (!isAbsolute(rest)) throw invalid(spec, 'the socket path must be absolute');
    if (rest.includes('\0')) throw invalid(spec, 'the socket path contains NUL');
    // sockaddr_un.sun_path is 108 bytes on Linux, NUL included.
    if (Buffer.byteLength(rest) > 107) throw invalid(spec, 'the socket path is longer than 107 bytes');
    return { transport: 'unix', path: rest };
  }
  if (transport !== 'inet' && transport !== 'inet6') throw invalid(spec, `unknown transport ${JSON.stringify(transport)}`);
  const at = rest.indexOf('@');
  if (at < 0) throw invalid(spec, 'expected PORT@HOST');
  const portText = rest.slice(0, at);
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) throw invalid(spec, `bad port ${JSON.stringify(portText)}`);
  let host = rest.slice(at + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') throw invalid(spec, 'the host is required');
  const ip = parseIp(host);
  let family: 4 | 6;
  if (ip !== null) {
    family = ip.family;
    host = ip.text;
  } else if (HOSTNAME.test(host)) {
    family = transport === 'inet6' ? 6 : 4;
  } else {
    throw invalid(spec, `bad host ${JSON.stringify(host)}`);
  }
  if (transport === 'inet6' && family !== 6 && ip !== null) throw invalid(spec, 'inet6 needs an IPv6 address');
  return { transport: 'inet', host, family, port: Number(portText) };
}

/** `inet:8891@127.0.0.1`, `inet:8891@[::1]` or `unix:/path`: our own syntax, for logs. */
export function formatListen(a: ListenAddress): string {
  if (a.transport === 'unix') return `unix:${a.path}`;
  return a.family === 6 ? `inet6:${a.port}@[${a.host}]` : `inet:${a.port}@${a.host}`;
}

/** The same endpoint as Postfix's `smtpd_milters` writes it: `inet:127.0.0.1:8891`, `inet:[::1]:8891`, `unix:/path`. */
export function postfixEndpoint(a: ListenAddress): string {
  if (a.transport === 'unix') return `unix:${a.path}`;
  return a.family === 6 ? `inet:[${a.host}]:${a.port}` : `inet:${a.host}:${a.port}`;
}
