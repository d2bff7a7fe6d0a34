/**
 * The submission listener's public surface: `startSubmission(engine, options)` opens every
 * binding of every enabled connector with `listen: true` (STARTTLS or implicit TLS, AUTH against
 * the configured back ends, proxy forwarding to the connector's next hop) and returns the bound
 * addresses and a graceful `close(deadlineMs)`. `mta-policy serve` calls exactly this.
 */
export { startSubmission, SubmissionError, type SubmissionAddress, type SubmissionListener, type SubmissionOptions } from './server.js';
export { CredentialStore, type CredentialStoreOptions } from './credentials.js';
export type { ProxyOptions } from './relay.js';
