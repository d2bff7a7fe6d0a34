/**
 * Listen addresses and listening, shared by the adapters that serve an MTA (the milter and the
 * Postfix policy server); protocol-independent.
 *
 * Syntax is libmilter's `smfi_setconn` (also Sendmail's `S=` and the configuration's
 * `milter.listen` / `postfix_policy.listen`): `inet:PORT@HOST`, `inet6:PORT@HOST` and
 * `unix:/path` (`local:/path` is a synonym). Postfix writes the same endpoints as
 * `inet:HOST:PORT` / `unix:/path` (`smtpd_milters`, `check_policy_service`);
 * {@link postfixEndpoint} renders that form for documentation and log lines.
 *
 * {@link bindServer} is the start-up every listener shares: a stale unix socket of a previous
 * run is replaced (never a live one, never another file), the port is taken exclusively, a unix
 * socket gets its mode. Failures are {@link ListenError}s; each adapter re-raises them under its
 * own stable code.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { isAbsolute } from 'node:path';
import type { SocketAddress } from '../../engine/config/endpoints.js';
import { MtaPolicyError } from '../../engine/errors.js';
import { parseIp, type ParseFailure } from '../../engine/ip.js';

/** A parsed listen address. `port` 0 asks the OS for a free port (tests). */
export type ListenAddress =
  | { readonly transport: 'inet'; readonly host: string; readonly family: 4 | 6; readonly port: number }
  | { readonly transport: 'unix'; readonly path: string };

/** The forms {@link parseListen} accepts, for error messages. */
export const LISTEN_FORMS = 'use inet:PORT@HOST, inet6:PORT@HOST or unix:/path';

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * Parse a listen address; total. The host is required (no silent wildcard): an IPv4 or IPv6
 * literal (brackets optional) or a host name such as `localhost`. A failure says what is wrong;
 * its `fix` is {@link LISTEN_FORMS}.
 */
export function parseListen(spec: string): ListenAddress | ParseFailure {
  const invalid = (error: string): ParseFailure => ({ error, fix: LISTEN_FORMS });
  const colon = spec.indexOf(':');
  if (colon < 0) return invalid('no transport');
  const transport = spec.slice(0, colon).toLowerCase();
  const rest = spec.slice(colon + 1);
  if (transport === 'unix' || transport === 'local') {
    if (!isAbsolute(rest)) return invalid('the socket path must be absolute');
    if (rest.includes('\0')) return invalid('the socket path contains NUL');
    // sockaddr_un.sun_path is 108 bytes on Linux, NUL included.
    if (Buffer.byteLength(rest) > 107) return invalid('the socket path is longer than 107 bytes');
    return { transport: 'unix', path: rest };
  }
  if (transport !== 'inet' && transport !== 'inet6') return invalid(`unknown transport ${JSON.stringify(transport)}`);
  const at = rest.indexOf('@');
  if (at < 0) return invalid('expected PORT@HOST');
  const portText = rest.slice(0, at);
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) return invalid(`bad port ${JSON.stringify(portText)}`);
  let host = rest.slice(at + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') return invalid('the host is required');
  const ip = parseIp(host);
  let family: 4 | 6;
  if (ip !== null) {
    family = ip.family;
    host = ip.text;
  } else if (HOSTNAME.test(host)) {
    family = transport === 'inet6' ? 6 : 4;
  } else {
    return invalid(`bad host ${JSON.stringify(host)}`);
  }
  if (transport === 'inet6' && family !== 6 && ip !== null) return invalid('inet6 needs an IPv6 address');
  return { transport: 'inet', host, family, port: Number(portText) };
}

/** The configuration's parsed `listen` (engine/config/endpoints.ts) as a {@link ListenAddress}. */
export function fromSocketAddress(a: SocketAddress): ListenAddress {
  if (a.kind === 'unix') return { transport: 'unix', path: a.path };
  return { transport: 'inet', host: a.host, family: a.host.includes(':') ? 6 : 4, port: a.port };
}

/** `inet:8891@127.0.0.1`, `inet6:8891@[::1]` or `unix:/path`: our own syntax, for logs. */
export function formatListen(a: ListenAddress): string {
  if (a.transport === 'unix') return `unix:${a.path}`;
  return a.family === 6 ? `inet6:${a.port}@[${a.host}]` : `inet:${a.port}@${a.host}`;
}

/** The same endpoint as Postfix writes it: `inet:127.0.0.1:8891`, `inet:[::1]:8891`, `unix:/path`. */
export function postfixEndpoint(a: ListenAddress): string {
  if (a.transport === 'unix') return `unix:${a.path}`;
  return a.family === 6 ? `inet:[${a.host}]:${a.port}` : `inet:${a.host}:${a.port}`;
}

/** A listener could not start; the message names the address and the reason. */
export class ListenError extends MtaPolicyError {
  declare readonly code: 'LISTEN_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super('LISTEN_FAILED', message, options);
  }
}

/**
 * A unix socket path may hold the socket of a previous run. Remove it only if it is a socket
 * nobody answers on; refuse anything else (a file, a live socket) rather than delete it.
 * Rejects with {@link ListenError}.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  const fail = (why: string, cause?: unknown): ListenError => new ListenError(`cannot listen on unix:${path}: ${why}`, cause === undefined ? undefined : { cause });
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(fail(e.message, e))));
  if (st === undefined) return;
  if (!st.isSocket()) throw fail('the path exists and is not a socket');
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw fail('another process is listening on it');
  await unlink(path).catch((e: NodeJS.ErrnoException) => Promise.reject(fail(e.message, e)));
}

/**
 * Make `server` listen on `spec`: a stale unix socket is replaced first
 * ({@link removeStaleSocket}), the address is taken exclusively (no sharing with a cluster
 * worker), IPv6 listens IPv6-only, and a unix socket gets `socketMode`. Resolves with the
 * address as bound (for port 0, the port the OS chose); rejects with {@link ListenError}.
 */
export async function bindServer(server: Server, spec: ListenAddress, socketMode: number): Promise<ListenAddress> {
  if (spec.transport === 'unix') await removeStaleSocket(spec.path);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(new ListenError(`cannot listen on ${formatListen(spec)}: ${e.message}`, { cause: e }));
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (spec.transport === 'unix') server.listen({ path: spec.path, exclusive: true }, done);
    else server.listen({ host: spec.host, port: spec.port, ipv6Only: spec.family === 6, exclusive: true }, done);
  });
  if (spec.transport === 'unix') {
    try {
      await chmod(spec.path, socketMode);
    } catch (e) {
      server.close();
      throw new ListenError(`cannot set the mode of ${spec.path}: ${(e as Error).message}`, { cause: e });
    }
    return spec;
  }
  const a = server.address();
  return a !== null && typeof a === 'object' ? { ...spec, port: a.port } : spec;
}

/** Remove the socket file a closed listener leaves behind (nothing for inet). Never rejects. */
export async function removeSocketFile(a: ListenAddress): Promise<void> {
  if (a.transport === 'unix') await unlink(a.path).catch(() => undefined);
}

/** A connection as {@link closeGracefully} sees it. */
export interface Closable {
  /** Resolves once the connection is closed. */
  readonly closed: Promise<void>;
  /** Close at once. */
  destroy(): void;
}

/**
 * Graceful close of a listener: stop accepting, wait up to `deadlineMs` for the connections in
 * `live` to close (the caller has asked them to), destroy what is still open then (after
 * calling `onDeadline` with their number, for a log line), and remove a unix socket file.
 * Resolves when the listener and every connection are closed.
 */
export async function closeGracefully(server: Server, address: ListenAddress, live: ReadonlySet<Closable>, deadlineMs: number, onDeadline: (open: number) => void): Promise<void> {
  const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), deadlineMs);
  });
  const outcome = await Promise.race([Promise.all([...live].map((c) => c.closed)), deadline]);
  clearTimeout(timer);
  if (outcome === 'deadline' && live.size > 0) {
    onDeadline(live.size);
    for (const c of live) c.destroy();
    await Promise.all([...live].map((c) => c.closed));
  }
  await stopped;
  await removeSocketFile(address);
}
