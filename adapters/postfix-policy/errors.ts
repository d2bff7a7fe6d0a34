import { MtaPolicyError } from '../../engine/errors.js';

/**
 * Stable codes of {@link PolicyProtocolError}: Postfix (or whatever connected) sent bytes that
 * are not an SMTPD_POLICY_README request. Each one closes that one policy connection — the
 * README's rule for trouble ("the server must log a warning and disconnect") — and Postfix then
 * retries the request on a new connection and, failing that, applies
 * `smtpd_policy_service_default_action`. None ever stops the process.
 */
export type PolicyProtocolErrorCode =
  /** An attribute line longer than the line limit; nothing beyond the limit was buffered. */
  | 'POLICY_LINE_TOO_LONG'
  /** More attributes in one request than the attribute limit. */
  | 'POLICY_TOO_MANY_ATTRIBUTES'
  /** More bytes in one request than the request limit. */
  | 'POLICY_REQUEST_TOO_LARGE'
  /** A line without `=`, or with an empty name. */
  | 'POLICY_ATTRIBUTE_MALFORMED'
  /** A NUL byte, which no attribute name or value may hold (SMTPD_POLICY_README). */
  | 'POLICY_NUL_BYTE'
  /** An empty line with no attribute before it: a request of nothing. */
  | 'POLICY_REQUEST_EMPTY'
  /** The connection ended inside a request. */
  | 'POLICY_REQUEST_TRUNCATED'
  /** A request started but was not completed within the request timeout. */
  | 'POLICY_TIMEOUT'
  /** (client side) The server's reply is not `action=…` followed by an empty line. */
  | 'POLICY_REPLY_MALFORMED';

/** The peer broke the policy protocol's framing. Closes that one connection. */
export class PolicyProtocolError extends MtaPolicyError {
  declare readonly code: PolicyProtocolErrorCode;
  constructor(code: PolicyProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * Stable codes of {@link PolicyRequestError}: a well-framed request that cannot be decided.
 * The connection stays open; the request gets the temporary-failure answer (never `OK`).
 */
export type PolicyRequestErrorCode =
  /** `request` is missing or is not `smtpd_access_policy`. */
  | 'POLICY_REQUEST_TYPE'
  /** `protocol_state` is missing or not one Postfix documents. */
  | 'POLICY_STATE_UNKNOWN'
  /**
   * `server_address`/`server_port` (Postfix ≥ 3.2) or `client_address` are missing, `unknown`
   * or not an IP address and port: the connector cannot be chosen, and is never guessed.
   */
  | 'POLICY_ENDPOINT_MISSING'
  /** An attribute the decision needs has a value that is not what Postfix sends (e.g. bad xtext). */
  | 'POLICY_ATTRIBUTE_INVALID'
  /** The engine did not decide within the decision timeout (e.g. a hung counter store). */
  | 'POLICY_DECISION_TIMEOUT';

/** A request the adapter cannot turn into facts. Answered with a 4xx; the connection stays. */
export class PolicyRequestError extends MtaPolicyError {
  declare readonly code: PolicyRequestErrorCode;
  constructor(code: PolicyRequestErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Stable codes of {@link PolicyServerError}. */
export type PolicyServerErrorCode =
  /** The listener could not start (address in use, permission, missing directory, live socket, bad address). */
  'POLICY_LISTEN_FAILED';

/** The policy listener could not be set up. */
export class PolicyServerError extends MtaPolicyError {
  declare readonly code: PolicyServerErrorCode;
  constructor(code: PolicyServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
