import { MtaPolicyError } from '../../engine/errors.js';

/**
 * Stable codes of {@link MilterProtocolError}: the MTA sent something the protocol does not
 * allow. Each one closes that one milter connection (the MTA then applies
 * `milter_default_action` / the Sendmail `F=` flag); none ever stops the process.
 */
export type MilterProtocolErrorCode =
  /** A packet length of 0: there is not even a command byte. */
  | 'MILTER_FRAME_EMPTY'
  /** A packet length above the configured maximum; nothing was allocated for it. */
  | 'MILTER_FRAME_TOO_LARGE'
  /** The stream ended inside a packet. */
  | 'MILTER_FRAME_TRUNCATED'
  /** A command byte that is no SMFIC_* command. */
  | 'MILTER_COMMAND_UNKNOWN'
  /** A known command whose payload does not match its layout (length, NUL, family …). */
  | 'MILTER_COMMAND_MALFORMED'
  /** A well-formed command that cannot occur at this point (e.g. anything before OPTNEG). */
  | 'MILTER_SEQUENCE'
  /** The MTA's offer cannot satisfy what we need (version < 6, a required action missing). */
  | 'MILTER_NEGOTIATION'
  /** The MTA exceeded a per-connection bound (macro bytes). */
  | 'MILTER_LIMIT'
  /** The MTA sent nothing within the read timeout. */
  | 'MILTER_TIMEOUT'
  /** (client side) The milter sent a reply that is malformed or unexpected here. */
  | 'MILTER_REPLY_MALFORMED'
  /** (client side) The milter closed the connection while a reply was awaited. */
  | 'MILTER_CONNECTION_CLOSED';

/** The peer violated the milter protocol. Closes that one connection. */
export class MilterProtocolError extends MtaPolicyError {
  declare readonly code: MilterProtocolErrorCode;
  constructor(code: MilterProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Stable codes of {@link MilterUsageError}: our own side asked for something invalid. */
export type MilterUsageErrorCode =
  /** A reply text that breaks the SMTP / libmilter rules (code class, CR/LF, length, lines). */
  | 'MILTER_REPLY_INVALID'
  /** A handler verdict that is not allowed at this stage (e.g. discard at CONNECT). */
  | 'MILTER_ACTION_INVALID'
  /** A modification that is malformed or was not negotiated with the MTA. */
  | 'MILTER_MODIFICATION_INVALID'
  /** The handler answered a stage negotiated as "no reply" with something other than continue. */
  | 'MILTER_NOREPLY_VIOLATED'
  /** The handler threw, rejected, or did not settle within its deadline. */
  | 'MILTER_HANDLER_FAILED'
  /** An option or argument outside its documented range (a programming error). */
  | 'MILTER_OPTION_INVALID';

/**
 * Our side (a handler, an encoder's caller) asked for something the protocol cannot carry.
 * The session turns every such error into SMFIR_TEMPFAIL and logs it; it is never an accept.
 */
export class MilterUsageError extends MtaPolicyError {
  declare readonly code: MilterUsageErrorCode;
  constructor(code: MilterUsageErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Stable codes of {@link MilterServerError}. */
export type MilterServerErrorCode =
  /** The listener could not start (address in use, permission, missing directory, live socket). */
  'MILTER_LISTEN_FAILED';

/** The milter listener could not be set up. */
export class MilterServerError extends MtaPolicyError {
  declare readonly code: MilterServerErrorCode;
  constructor(code: MilterServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
