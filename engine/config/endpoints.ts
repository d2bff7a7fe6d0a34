/**
 * Socket addresses and next hops as the configuration writes them, parsed into typed values:
 * milter and policy-server listeners (libmilter's `inet:PORT@HOST` / `unix:/path`), the
 * Dovecot auth socket (`unix:/path` / `inet:HOST:PORT`), and next hops (`smtp://host:port`,
 * `lmtp://host:port`, `lmtp:/path.sock`, `maildir:/dir`).
 *
 * Hosts are IP addresses (canonical text) or, where a name makes sense (a next hop, the
 * Dovecot server), host names; never URL-parsed. Socket paths must be absolute; a Maildir may
 * be relative to the configuration file.
 */
import { isParseFailure, parseIp, type ParseFailure } from '../ip.js';
import { resolvePath } from './files.js';
import { code } from './issues.js';
import { normaliseHost } from './names.js';

export type SocketAddress =
  | { readonly kind: 'inet'; readonly host: string; readonly port: number }
  /** `path` is absolute. */
  | { readonly kind: 'unix'; readonly path: string };

export type NextHop =
  | { readonly kind: 'smtp' | 'lmtp'; readonly address: SocketAddress; readonly text: string }
  /** `dir` is absolute. */
  | { readonly kind: 'maildir'; readonly dir: string; readonly text: string };

function port(text: string, whole: string): number | ParseFailure {
  return /^[1-9][0-9]{0,4}$/.test(text) && Number(text) <= 65535 ? Number(text) : { error: `${code(text)} in ${code(whole)} is not a port`, fix: 'use a port from 1 to 65535' };
}

/** An IP address (IPv6 optionally in brackets), or a host name when `names` allows one. */
function host(text: string, whole: string, names: boolean): string | ParseFailure {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const ip = parseIp(bare);
  if (ip !== null) return ip.text;
  if (!names) return { error: `${code(text)} in ${code(whole)} is not an IP address`, fix: 'listen on an IP address, e.g. 127.0.0.1 or ::1' };
  const name = normaliseHost(bare);
  return isParseFailure(name) ? { error: `${code(text)} in ${code(whole)} is not an IP address or host name`, fix: name.fix ?? '' } : name;
}

function unixPath(path: string, whole: string): SocketAddress | ParseFailure {
  if (!path.startsWith('/')) return { error: `the socket path in ${code(whole)} is not absolute`, fix: `write unix:/run/mta-policy/${path.replace(/^\.?\//, '') || 'socket'}` };
  return { kind: 'unix', path };
}

/** `HOST:PORT` (IPv6 in brackets) after a scheme. */
function hostPort(rest: string, whole: string, names: boolean): SocketAddress | ParseFailure {
  const colon = rest.lastIndexOf(':');
  if (colon < 0 || (rest.indexOf(':') !== colon && !rest.startsWith('['))) {
    return { error: `${code(whole)} needs HOST:PORT`, fix: 'write the port after the host, e.g. 127.0.0.1:12345 or [::1]:12345' };
  }
  const h = host(rest.slice(0, colon), whole, names);
  const p = port(rest.slice(colon + 1), whole);
  return isParseFailure(h) ? h : isParseFailure(p) ? p : { kind: 'inet', host: h, port: p };
}

const LISTEN_FORMS = 'write inet:PORT@HOST (e.g. inet:8891@127.0.0.1) or unix:/absolute/path';

/** A listener for the milter or the policy server: `inet:PORT@HOST` or `unix:/absolute/path`. */
export function parseListen(text: string): SocketAddress | ParseFailure {
  const t = text.trim();
  if (t.startsWith('unix:')) return unixPath(t.slice(5), t);
  if (!t.startsWith('inet:')) return { error: `${code(t)} is not a listen address`, fix: LISTEN_FORMS };
  const [p = '', h, ...more] = t.slice(5).split('@');
  if (h === undefined || more.length > 0) return { error: `${code(t)} is not inet:PORT@HOST`, fix: LISTEN_FORMS };
  const hh = host(h, t, false);
  const pp = port(p, t);
  return isParseFailure(hh) ? hh : isParseFailure(pp) ? pp : { kind: 'inet', host: hh, port: pp };
}

/** The Dovecot auth socket: `unix:/absolute/path` or `inet:HOST:PORT`. */
export function parseAuthSocket(text: string): SocketAddress | ParseFailure {
  const t = text.trim();
  if (t.startsWith('unix:')) return unixPath(t.slice(5), t);
  if (t.startsWith('inet:')) return hostPort(t.slice(5), t, true);
  return { error: `${code(t)} is not a socket address`, fix: 'write unix:/run/dovecot/auth-client or inet:HOST:PORT' };
}

const NEXT_HOP_FORMS = 'write smtp://host:port, lmtp://host:port, lmtp:/path.sock or maildir:/dir';

/** A next hop; a relative Maildir is resolved against `configFile`'s directory. */
export function parseNextHop(text: string, configFile: string): NextHop | ParseFailure {
  const t = text.trim();
  const scheme = /^(smtp|lmtp):\/\/(.*)$/.exec(t);
  if (scheme !== null) {
    const kind = scheme[1] === 'smtp' ? 'smtp' : 'lmtp';
    const rest = scheme[2] ?? '';
    if (/[/?#@\\]/.test(rest)) return { error: `${code(t)} has a path, query or user part`, fix: `write ${kind}://host:port only` };
    const address = hostPort(rest, t, true);
    return isParseFailure(address) ? address : { kind, address, text: t };
  }
  if (t.startsWith('lmtp:')) {
    const address = unixPath(t.slice(5), t);
    return isParseFailure(address) ? address : { kind: 'lmtp', address, text: t };
  }
  if (t.startsWith('maildir:')) {
    const dir = t.slice(8);
    return dir === '' ? { error: `${code(t)} names no directory`, fix: NEXT_HOP_FORMS } : { kind: 'maildir', dir: resolvePath(dir, configFile), text: t };
  }
  return { error: `${code(t)} is not a next hop`, fix: NEXT_HOP_FORMS };
}
