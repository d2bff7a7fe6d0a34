/**
 * What a Session is made from: the connection it describes (`SessionInit`), the adapter's
 * options (`SessionOptions`), and what the engine lends it (`SessionEnv`). engine/session.ts
 * holds the state machine.
 */
import type { Counters } from './counters.js';
import type { Decision, Endpoint, TlsFacts } from './types.js';

export interface SessionInit {
  /** The local endpoint the client connected to (`ip:port`): it selects the connector. */
  readonly local: Endpoint;
  /** The client (`ip`, `ip:port`, or an object). */
  readonly remote: string | { readonly ip: string; readonly port?: number };
  /** TLS from the first byte (implicit TLS, or an MTA that reports TLS at connect). */
  readonly tls?: TlsFacts | null;
}

export interface SessionOptions {
  /** Fields added to every decision log line (e.g. `{ conn: id, adapter: 'milter' }`). */
  readonly logBindings?: object;
  /** Counters for this session instead of the engine's (scenario runs use their own). */
  readonly counters?: Counters;
  /** Failed logons already counted for this client before the session (e.g. from a shared store). */
  readonly logonFailures?: number;
}

/** What the engine lends a session. */
export interface SessionEnv {
  nextId(): string;
  log(d: Decision, t0: number, bindings: object): void;
  /** A failure that has no decision to carry it (a counter store failing after the fact). */
  fault(what: string, e: unknown, bindings: object): void;
  readonly counters: Counters;
  readonly timed: boolean;
}
