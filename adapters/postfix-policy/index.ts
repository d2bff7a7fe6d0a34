/**
 * The Postfix policy-delegation adapter (`check_policy_service`, SMTPD_POLICY_README): relay
 * grants and every other connector decision for Postfix, through the engine's Session seam.
 * Layers: codec.ts (wire format), attributes.ts (attributes → facts), actions.ts (decision →
 * `action=`), session.ts (one request → one decision), server.ts (sockets). Guide:
 * docs/postfix-policy.md.
 */
export { DEFAULT_LIMITS, ReplyDecoder, RequestDecoder, encodeAction, encodeRequest, type DecodeResult, type PolicyLimits, type PolicyRequest } from './codec.js';
export { PROTOCOL_STATES, REQUEST_TYPE, decodeXtext, requestFacts, smtpPath, type ProtocolState, type RequestFacts } from './attributes.js';
export { actionFor, failureAction, type ActionKind, type PolicyAction } from './actions.js';
export { DEFAULT_DECISION_TIMEOUT_MS, answerRequest, type PolicyAnswer, type PolicyEngine } from './session.js';
export { formatListen, parseListen, postfixEndpoint, type ListenAddress } from '../shared/listen.js';
export {
  PolicyProtocolError,
  PolicyRequestError,
  PolicyServerError,
  type PolicyProtocolErrorCode,
  type PolicyRequestErrorCode,
  type PolicyServerErrorCode,
} from './errors.js';
export {
  DEFAULT_CLOSE_DEADLINE_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SOCKET_MODE,
  PolicyServer,
  type PolicyLogger,
  type PolicyServerOptions,
} from './server.js';
