/**
 * The milter adapter's public surface (Sendmail/Postfix milter protocol version 6): the
 * protocol layers, the enforcement that puts the engine behind them (`startMilter`,
 * `createMilterHandlerFactory`), and the MTA-side client (`MilterClient`, for milter-check).
 * Specification: adapters/spec/milter-v6.md; the engine seam: adapters/README.md.
 */
export * as constants from './constants.js';
export { DEFAULT_MAX_FRAME_LENGTH, FrameDecoder, encodeFrame, type DecodeResult, type Frame, type FrameDecoderOptions } from './codec.js';
export { commandFrame, decodeCommand, encodeCommand, type AddressFamily, type MilterCommand, type MilterCommandKind, type OptNeg } from './commands.js';
export {
  MilterProtocolError,
  MilterServerError,
  MilterUsageError,
  type MilterProtocolErrorCode,
  type MilterServerErrorCode,
  type MilterUsageErrorCode,
} from './errors.js';
export { formatListen, parseListen, postfixEndpoint, type ListenAddress } from './listen.js';
export { Macros, canonicalMacroName } from './macros.js';
export { MACRO_STAGE_CODES, MILTER_EVENTS, actionNames, negotiate, optnegReply, type MacroStage, type MilterEvent, type MilterNeeds, type Negotiated } from './negotiate.js';
export { MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_REPLY_TEXT, formatReplyText, parseReplyText, type ParsedReplyText, type ReplyText } from './reply-text.js';
export { FINAL_REPLY_KINDS, decodeReply, encodeReply, replyFrame, type MilterReply, type MilterReplyKind } from './replies.js';
export {
  DEFAULT_CLOSE_DEADLINE_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_SOCKET_MODE,
  DEFAULT_WRITE_TIMEOUT_MS,
  MilterServer,
  type MilterServerOptions,
} from './server.js';
export { DEFAULT_HANDLER_TIMEOUT_MS, DEFAULT_MAX_MACRO_BYTES, MilterSession, type SessionOptions, type SessionStep } from './session.js';
export {
  disconnect,
  type Awaitable,
  type ConnectInfo,
  type EomResult,
  type HandlerContext,
  type HandlerFactory,
  type MilterAction,
  type MilterActionKind,
  type MilterHandler,
  type MilterLogger,
  type Modification,
} from './types.js';
export { FULL_OFFER, MilterClient, type EomOutcome, type MacroPairs, type MilterClientOptions } from './client.js';
export {
  DEFAULT_MAX_CONNECTIONS,
  createMilterHandlerFactory,
  milterNeeds,
  startMilter,
  type EnforcementLogCode,
  type EnforcementOptions,
  type MilterEngine,
  type StartMilterOptions,
} from './enforce.js';
export { DISCONNECT_CODE, headerEdits, milterAction } from './decisions.js';
export { DAEMON_MACROS_HINT, MILTER_MACROS } from './facts.js';
