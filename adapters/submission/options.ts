/**
 * The submission listener's public options and results (server.ts runs it): what
 * `startSubmission` accepts, what it answers, its start-up error, and the defaults.
 */
import { MtaPolicyError } from '../../engine/errors.js';
import type { AdapterLogger } from '../shared/logger.js';
import type { CredentialStore } from './credentials.js';
import type { ProxyOptions } from './relay.js';

/** Options of {@link startSubmission}; every one has a default. */
export interface SubmissionOptions {
  /** Credential back ends; default: `CredentialStore.open(engine.config)` (closed by `close`). */
  readonly credentials?: CredentialStore;
  /** Listener events (start, errors); decisions are logged by the engine. Nothing secret is logged. */
  readonly logger?: AdapterLogger;
  /** Idle time allowed while the client owes a command or data. Default 300 s (RFC 5321 §4.5.3.2.7). */
  readonly idleTimeoutMs?: number;
  /** Whole-connection limit. Default 600 s (Exchange ConnectionTimeout for client connectors). */
  readonly sessionTimeoutMs?: number;
  /** Concurrent connections per binding before `421`. Default 1000. */
  readonly maxConnections?: number;
  /** Tarpit before answering a failed logon. Default 5 s (Exchange TarpitInterval). */
  readonly authFailureDelayMs?: number;
  /** Next-hop client options for smtp:// and lmtp:// hops (timeouts, STARTTLS, smarthost AUTH). */
  readonly nextHop?: ProxyOptions;
}

/** One bound listener. */
export interface SubmissionAddress {
  readonly connector: string;
  /** The configured binding (`ip:port`). */
  readonly binding: string;
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
}

/** The running listener. */
export interface SubmissionListener {
  readonly addresses: readonly SubmissionAddress[];
  /**
   * Graceful shutdown: stop accepting, let transactions in flight finish for up to `deadlineMs`
   * (default 30 s), then answer `421 4.3.2` to every connection left and close it.
   */
  close(deadlineMs?: number): Promise<void>;
}

/** The listener could not start (no certificate for implicit TLS, no next hop, a bind error). */
export class SubmissionError extends MtaPolicyError {}

export const DEFAULTS = { idleTimeoutMs: 300_000, sessionTimeoutMs: 600_000, maxConnections: 1000, authFailureDelayMs: 5_000 } as const;
