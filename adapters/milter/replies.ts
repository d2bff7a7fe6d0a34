/**
 * SMFIR_* replies (milter → MTA) as data, their strict encoder, and the decoder the MTA side
 * (test client, `milter-check`) uses. Layouts: adapters/spec/milter-v6.md §5; reply-text rules
 * §6. The encoder refuses anything an MTA would reject or misread (a NUL inside a string, a
 * header name with a colon, a 4xx text on a reject …) with a `MilterUsageError`; nothing
 * malformed ever reaches the wire.
 */
import {
  MILTER_CHUNK_SIZE,
  MILTER_OPTLEN,
  SMFIC_OPTNEG,
  SMFIR_ACCEPT,
  SMFIR_ADDHEADER,
  SMFIR_ADDRCPT,
  SMFIR_ADDRCPT_PAR,
  SMFIR_CHGFROM,
  SMFIR_CHGHEADER,
  SMFIR_CONTINUE,
  SMFIR_DELRCPT,
  SMFIR_DISCARD,
  SMFIR_INSHEADER,
  SMFIR_PROGRESS,
  SMFIR_QUARANTINE,
  SMFIR_REJECT,
  SMFIR_REPLBODY,
  SMFIR_REPLYCODE,
  SMFIR_SKIP,
  SMFIR_TEMPFAIL,
  replyName,
} from './constants.js';
import { encodeFrame, type Frame } from './codec.js';
import { cString, splitCStrings } from './commands.js';
import { MilterProtocolError, MilterUsageError } from './errors.js';
import { checkReplyText, parseReplyText } from './reply-text.js';

export { formatReplyText, parseReplyText, type ReplyText, type ParsedReplyText } from './reply-text.js';

/** One SMFIR_* packet, as data. Kinds follow the spec names. */
export type MilterReply =
  /** Answer to SMFIC_OPTNEG; `macros` are the SETSYMLIST requests `[SMFIM_* stage, "names"]`. */
  | {
      readonly kind: 'optneg';
      readonly version: number;
      readonly actions: number;
      readonly protocol: number;
      readonly macros: readonly (readonly [number, string])[];
    }
  | { readonly kind: 'continue' } // SMFIR_CONTINUE
  | { readonly kind: 'accept' } // SMFIR_ACCEPT
  | { readonly kind: 'reject' } // SMFIR_REJECT
  | { readonly kind: 'tempfail' } // SMFIR_TEMPFAIL
  | { readonly kind: 'discard' } // SMFIR_DISCARD
  | { readonly kind: 'skip' } // SMFIR_SKIP
  | { readonly kind: 'progress' } // SMFIR_PROGRESS
  /** SMFIR_REPLYCODE; `text` is the wire form: `%` already doubled, lines joined by CRLF. */
  | { readonly kind: 'replyCode'; readonly text: string }
  | { readonly kind: 'addHeader'; readonly name: string; readonly value: string } // SMFIR_ADDHEADER
  | { readonly kind: 'insHeader'; readonly index: number; readonly name: string; readonly value: string } // SMFIR_INSHEADER
  /** SMFIR_CHGHEADER; an empty value deletes the `index`-th (1-based) field of that name. */
  | { readonly kind: 'chgHeader'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly kind: 'addRcpt'; readonly rcpt: string } // SMFIR_ADDRCPT
  /** SMFIR_ADDRCPT_PAR; `args` is ONE space-separated string, as libmilter's send2() builds it. */
  | { readonly kind: 'addRcptPar'; readonly rcpt: string; readonly args?: string }
  | { readonly kind: 'delRcpt'; readonly rcpt: string } // SMFIR_DELRCPT
  /** SMFIR_CHGFROM; `args` as for addRcptPar. */
  | { readonly kind: 'chgFrom'; readonly sender: string; readonly args?: string }
  /** SMFIR_REPLBODY: raw bytes, at most MILTER_CHUNK_SIZE, no NUL terminator. */
  | { readonly kind: 'replBody'; readonly chunk: Buffer }
  | { readonly kind: 'quarantine'; readonly reason: string }; // SMFIR_QUARANTINE

/** The `kind` of a reply. */
export type MilterReplyKind = MilterReply['kind'];

/** Verdicts: a reply that ends the MTA's wait for this command (everything else is interim). */
export const FINAL_REPLY_KINDS: ReadonlySet<MilterReplyKind> = new Set([
  'continue',
  'accept',
  'reject',
  'tempfail',
  'discard',
  'skip',
  'replyCode',
  'optneg',
]);

/** RFC 5322 §3.6.8 field-name: printable US-ASCII except colon. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** A header value may fold with LF + WSP only (MTAs re-add CR); no CR, NUL or bare LF. */
const BAD_VALUE = /[\0\r]|\n(?![ \t])/;

function invalid(why: string): MilterUsageError {
  return new MilterUsageError('MILTER_MODIFICATION_INVALID', why);
}

function headerName(name: string): Buffer {
  if (!FIELD_NAME.test(name)) throw invalid(`invalid header name ${JSON.stringify(name)}`);
  return cString(name);
}

function headerValue(value: string): Buffer {
  if (BAD_VALUE.test(value)) throw invalid('header value contains NUL, CR or an LF not followed by a space or tab');
  return cString(value);
}

function index32(index: number, min: number): Buffer {
  if (!Number.isInteger(index) || index < min || index > 0xffffffff) throw invalid(`header index must be an integer ≥ ${min}, got ${index}`);
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(index, 0);
  return b;
}

function oneLine(what: string, s: string, allowEmpty = false): Buffer {
  if (!allowEmpty && s === '') throw invalid(`${what} is empty`);
  if (/[\0\r\n]/.test(s)) throw invalid(`${what} contains NUL, CR or LF`);
  return cString(s);
}

function u32(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new MilterUsageError('MILTER_OPTION_INVALID', `not a 32-bit unsigned value: ${n}`);
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

const NO_DATA = Buffer.alloc(0);

/** The frame for `reply`, after validating every field. Throws only `MilterUsageError`. */
export function replyFrame(reply: MilterReply): Frame {
  const frame = buildFrame(reply);
  // Sendmail reads at most 64 KiB − 1 per packet unless MDS was negotiated (milter-v6.md §2).
  if (frame.command !== SMFIC_OPTNEG && frame.data.length > MILTER_CHUNK_SIZE) {
    throw invalid(`${replyName(frame.command)} payload of ${frame.data.length} bytes exceeds ${MILTER_CHUNK_SIZE}`);
  }
  return frame;
}

function buildFrame(reply: MilterReply): Frame {
  switch (reply.kind) {
    case 'optneg':
      return {
        command: SMFIC_OPTNEG,
        data: Buffer.concat([
          u32(reply.version),
          u32(reply.actions),
          u32(reply.protocol),
          ...reply.macros.flatMap(([stage, names]) => [u32(stage), oneLine('macro list', names)]),
        ]),
      };
    case 'continue':
      return { command: SMFIR_CONTINUE, data: NO_DATA };
    case 'accept':
      return { command: SMFIR_ACCEPT, data: NO_DATA };
    case 'reject':
      return { command: SMFIR_REJECT, data: NO_DATA };
    case 'tempfail':
      return { command: SMFIR_TEMPFAIL, data: NO_DATA };
    case 'discard':
      return { command: SMFIR_DISCARD, data: NO_DATA };
    case 'skip':
      return { command: SMFIR_SKIP, data: NO_DATA };
    case 'progress':
      return { command: SMFIR_PROGRESS, data: NO_DATA };
    case 'replyCode': {
      const problem = checkReplyText(reply.text);
      if (problem !== undefined) throw new MilterUsageError('MILTER_REPLY_INVALID', problem);
      return { command: SMFIR_REPLYCODE, data: cString(reply.text) };
    }
    case 'addHeader':
      return { command: SMFIR_ADDHEADER, data: Buffer.concat([headerName(reply.name), headerValue(reply.value)]) };
    case 'insHeader':
      return { command: SMFIR_INSHEADER, data: Buffer.concat([index32(reply.index, 0), headerName(reply.name), headerValue(reply.value)]) };
    case 'chgHeader':
      return { command: SMFIR_CHGHEADER, data: Buffer.concat([index32(reply.index, 1), headerName(reply.name), headerValue(reply.value)]) };
    case 'addRcpt':
      return { command: SMFIR_ADDRCPT, data: oneLine('recipient', reply.rcpt) };
    case 'addRcptPar':
      return {
        command: SMFIR_ADDRCPT_PAR,
        data: Buffer.concat([oneLine('recipient', reply.rcpt), ...(reply.args === undefined ? [] : [oneLine('ESMTP arguments', reply.args)])]),
      };
    case 'delRcpt':
      return { command: SMFIR_DELRCPT, data: oneLine('recipient', reply.rcpt) };
    case 'chgFrom':
      return {
        command: SMFIR_CHGFROM,
        data: Buffer.concat([oneLine('sender', reply.sender), ...(reply.args === undefined ? [] : [oneLine('ESMTP arguments', reply.args)])]),
      };
    case 'replBody':
      return { command: SMFIR_REPLBODY, data: reply.chunk };
    case 'quarantine':
      return { command: SMFIR_QUARANTINE, data: oneLine('quarantine reason', reply.reason) };
  }
}

/** Wire bytes (length prefix included) of `reply`. */
export function encodeReply(reply: MilterReply): Buffer {
  const f = replyFrame(reply);
  return encodeFrame(f.command, f.data);
}

// --- decoding (the MTA side) ------------------------------------------------------------------

function bad(frame: Frame, why: string): MilterProtocolError {
  return new MilterProtocolError('MILTER_REPLY_MALFORMED', `${replyName(frame.command)}: ${why}`);
}

function strings(frame: Frame, data: Buffer, min: number, max: number): string[] | MilterProtocolError {
  const parts = splitCStrings(frame.command, data);
  if (parts instanceof MilterProtocolError) return bad(frame, 'string is not NUL-terminated');
  if (parts.length < min || parts.length > max) return bad(frame, `expected ${min === max ? min : `${min}–${max}`} string(s), got ${parts.length}`);
  return parts;
}

function noData(frame: Frame, reply: MilterReply): MilterReply | MilterProtocolError {
  return frame.data.length === 0 ? reply : bad(frame, `carries ${frame.data.length} unexpected bytes`);
}

/**
 * Decode a milter's reply packet the way an MTA reads it. `command` SMFIC_OPTNEG ('O') is the
 * negotiation answer. Never throws.
 */
export function decodeReply(frame: Frame): MilterReply | MilterProtocolError {
  const d = frame.data;
  switch (frame.command) {
    case SMFIC_OPTNEG: {
      if (d.length < MILTER_OPTLEN) return bad(frame, `payload is ${d.length} bytes, at least ${MILTER_OPTLEN} expected`);
      const macros: [number, string][] = [];
      let pos = MILTER_OPTLEN;
      while (pos < d.length) {
        if (d.length - pos < 5) return bad(frame, 'truncated macro list entry');
        const stage = d.readUInt32BE(pos);
        const nul = d.indexOf(0, pos + 4);
        if (nul < 0) return bad(frame, 'macro list is not NUL-terminated');
        macros.push([stage, d.toString('utf8', pos + 4, nul)]);
        pos = nul + 1;
      }
      return { kind: 'optneg', version: d.readUInt32BE(0), actions: d.readUInt32BE(4), protocol: d.readUInt32BE(8), macros };
    }
    case SMFIR_CONTINUE:
      return noData(frame, { kind: 'continue' });
    case SMFIR_ACCEPT:
      return noData(frame, { kind: 'accept' });
    case SMFIR_REJECT:
      return noData(frame, { kind: 'reject' });
    case SMFIR_TEMPFAIL:
      return noData(frame, { kind: 'tempfail' });
    case SMFIR_DISCARD:
      return noData(frame, { kind: 'discard' });
    case SMFIR_SKIP:
      return noData(frame, { kind: 'skip' });
    case SMFIR_PROGRESS:
      return noData(frame, { kind: 'progress' });
    case SMFIR_REPLYCODE: {
      const s = strings(frame, d, 1, 1);
      if (s instanceof MilterProtocolError) return s;
      const parsed = parseReplyText(s[0] as string);
      return parsed instanceof MilterProtocolError ? parsed : { kind: 'replyCode', text: s[0] as string };
    }
    case SMFIR_ADDHEADER: {
      const s = strings(frame, d, 2, 2);
      return s instanceof MilterProtocolError ? s : { kind: 'addHeader', name: s[0] as string, value: s[1] as string };
    }
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER: {
      if (d.length < 4) return bad(frame, 'index missing');
      const s = strings(frame, d.subarray(4), 2, 2);
      if (s instanceof MilterProtocolError) return s;
      const kind = frame.command === SMFIR_INSHEADER ? 'insHeader' : 'chgHeader';
      return { kind, index: d.readUInt32BE(0), name: s[0] as string, value: s[1] as string };
    }
    case SMFIR_ADDRCPT:
    case SMFIR_DELRCPT: {
      const s = strings(frame, d, 1, 1);
      if (s instanceof MilterProtocolError) return s;
      return { kind: frame.command === SMFIR_ADDRCPT ? 'addRcpt' : 'delRcpt', rcpt: s[0] as string };
    }
    case SMFIR_ADDRCPT_PAR: {
      const s = strings(frame, d, 1, 2);
      if (s instanceof MilterProtocolError) return s;
      return s.length === 2 ? { kind: 'addRcptPar', rcpt: s[0] as string, args: s[1] as string } : { kind: 'addRcptPar', rcpt: s[0] as string };
    }
    case SMFIR_CHGFROM: {
      const s = strings(frame, d, 1, 2);
      if (s instanceof MilterProtocolError) return s;
      return s.length === 2 ? { kind: 'chgFrom', sender: s[0] as string, args: s[1] as string } : { kind: 'chgFrom', sender: s[0] as string };
    }
    case SMFIR_REPLBODY:
      return { kind: 'replBody', chunk: d };
    case SMFIR_QUARANTINE: {
      const s = strings(frame, d, 1, 1);
      return s instanceof MilterProtocolError ? s : { kind: 'quarantine', reason: s[0] as string };
    }
    default:
      return bad(frame, 'not a reply a milter may send');
  }
}
