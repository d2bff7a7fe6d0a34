/**
 * SMFIC_* commands (MTA → milter): frame ⇄ typed command, both directions, pure and total.
 * Layouts: adapters/spec/milter-v6.md §4. Every length is checked before it is used, every
 * string must be NUL-terminated, and no trailing bytes are tolerated — a malformed packet is a
 * `MILTER_COMMAND_MALFORMED` error, never a guess. Strings are decoded as UTF-8 (invalid
 * sequences become U+FFFD; 8-bit header text therefore never closes a connection).
 */
import {
  MILTER_OPTLEN,
  SMFIA_INET,
  SMFIA_INET6,
  SMFIA_UNIX,
  SMFIA_UNKNOWN,
  SMFIC_ABORT,
  SMFIC_BODY,
  SMFIC_BODYEOB,
  SMFIC_CONNECT,
  SMFIC_DATA,
  SMFIC_EOH,
  SMFIC_HEADER,
  SMFIC_HELO,
  SMFIC_MACRO,
  SMFIC_MAIL,
  SMFIC_OPTNEG,
  SMFIC_QUIT,
  SMFIC_QUIT_NC,
  SMFIC_RCPT,
  SMFIC_UNKNOWN,
  commandName,
} from './constants.js';
import { encodeFrame, type Frame } from './codec.js';
import { MilterProtocolError, MilterUsageError } from './errors.js';

/** Address family of an SMFIC_CONNECT: `'4'`, `'6'`, `'L'`, `'U'` on the wire. */
export type AddressFamily = 'inet' | 'inet6' | 'unix' | 'unknown';

/** The MTA's SMFIC_OPTNEG: its protocol version and what it can do. */
export interface OptNeg {
  readonly version: number;
  /** SMFIF_* actions the MTA can perform. */
  readonly actions: number;
  /** SMFIP_* protocol bits the MTA supports. */
  readonly protocol: number;
}

/** One decoded SMFIC_* command. */
export type MilterCommand =
  | ({ readonly kind: 'optneg' } & OptNeg)
  /** `stage` is the command byte the macros belong to (`C H M R T N E`, Postfix also `L B U`). */
  | { readonly kind: 'macro'; readonly stage: number; readonly macros: readonly (readonly [string, string])[] }
  | {
      readonly kind: 'connect';
      /** PTR name, or Postfix's `[192.0.2.1]` form when there is none. */
      readonly hostname: string;
      readonly family: AddressFamily;
      /** Present unless family is `unknown`; 0 for `unix`. */
      readonly port?: number;
      /** IP text (Sendmail's `IPv6:` prefix removed) or socket path; absent for `unknown`. */
      readonly address?: string;
    }
  | { readonly kind: 'helo'; readonly name: string }
  /** `args[0]` is the address as typed, with its `<>`; each ESMTP parameter is its own string. */
  | { readonly kind: 'mail'; readonly args: readonly string[] }
  | { readonly kind: 'rcpt'; readonly args: readonly string[] }
  | { readonly kind: 'data' }
  | { readonly kind: 'header'; readonly name: string; readonly value: string }
  | { readonly kind: 'eoh' }
  /** Raw body bytes: CRLF line ends, dot-unstuffed, no NUL terminator. */
  | { readonly kind: 'body'; readonly chunk: Buffer }
  /** End of body. libmilter accepts data here and treats it as a last body chunk. */
  | { readonly kind: 'eom'; readonly chunk: Buffer }
  | { readonly kind: 'abort' }
  | { readonly kind: 'quit' }
  | { readonly kind: 'quitNc' }
  /** An SMTP command the MTA did not recognise (Postfix sends only the verb). */
  | { readonly kind: 'unknown'; readonly command: string };

/** The `kind` of a command. */
export type MilterCommandKind = MilterCommand['kind'];

const IPV6_PREFIX = 'ipv6:';

function malformed(cmd: number, why: string): MilterProtocolError {
  return new MilterProtocolError('MILTER_COMMAND_MALFORMED', `${commandName(cmd)}: ${why}`);
}

/**
 * Split `data` into NUL-terminated strings. Every NUL ends a string, empty strings survive
 * (`"X-Empty\0\0"` is two strings), and bytes after the last NUL are an error. Empty data is
 * no strings.
 */
export function splitCStrings(cmd: number, data: Buffer): string[] | MilterProtocolError {
  if (data.length === 0) return [];
  if (data[data.length - 1] !== 0) return malformed(cmd, 'string is not NUL-terminated');
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nul = data.indexOf(0, start);
    if (nul < 0) break;
    out.push(data.toString('utf8', start, nul));
    start = nul + 1;
  }
  return out;
}

function exactStrings(cmd: number, data: Buffer, count: number, what: string): string[] | MilterProtocolError {
  const parts = splitCStrings(cmd, data);
  if (parts instanceof MilterProtocolError) return parts;
  if (parts.length !== count) return malformed(cmd, `expected ${what}, got ${parts.length} string(s)`);
  return parts;
}

function familyOf(byte: number): AddressFamily | undefined {
  switch (byte) {
    case SMFIA_INET:
      return 'inet';
    case SMFIA_INET6:
      return 'inet6';
    case SMFIA_UNIX:
      return 'unix';
    case SMFIA_UNKNOWN:
      return 'unknown';
    default:
      return undefined;
  }
}

function decodeConnect(data: Buffer): MilterCommand | MilterProtocolError {
  const nul = data.indexOf(0);
  if (nul < 0) return malformed(SMFIC_CONNECT, 'hostname is not NUL-terminated');
  const hostname = data.toString('utf8', 0, nul);
  let pos = nul + 1;
  if (pos >= data.length) return malformed(SMFIC_CONNECT, 'address family missing');
  const familyByte = data[pos] as number;
  const family = familyOf(familyByte);
  if (family === undefined) return malformed(SMFIC_CONNECT, `unknown address family 0x${familyByte.toString(16)}`);
  pos += 1;
  if (family === 'unknown') {
    if (pos !== data.length) return malformed(SMFIC_CONNECT, 'family U carries no port or address');
    return { kind: 'connect', hostname, family };
  }
  if (data.length - pos < 2) return malformed(SMFIC_CONNECT, 'port missing');
  const port = data.readUInt16BE(pos);
  pos += 2;
  const rest = exactStrings(SMFIC_CONNECT, data.subarray(pos), 1, 'one address string');
  if (rest instanceof MilterProtocolError) return rest;
  let address = rest[0] as string;
  // Sendmail's anynet_ntop() writes "IPv6:" before IPv6 peers (milter-v6.md §4.3).
  if (family === 'inet6' && address.slice(0, IPV6_PREFIX.length).toLowerCase() === IPV6_PREFIX) {
    address = address.slice(IPV6_PREFIX.length);
  }
  return { kind: 'connect', hostname, family, port, address };
}

function decodeArgv(cmd: number, data: Buffer, kind: 'mail' | 'rcpt'): MilterCommand | MilterProtocolError {
  const args = splitCStrings(cmd, data);
  if (args instanceof MilterProtocolError) return args;
  if (args.length === 0) return malformed(cmd, 'no address');
  return { kind, args };
}

function decodeMacro(data: Buffer): MilterCommand | MilterProtocolError {
  if (data.length < 1) return malformed(SMFIC_MACRO, 'stage byte missing');
  const stage = data[0] as number;
  const parts = splitCStrings(SMFIC_MACRO, data.subarray(1));
  if (parts instanceof MilterProtocolError) return parts;
  if (parts.length % 2 !== 0) return malformed(SMFIC_MACRO, `odd number of strings (${parts.length}) in name/value pairs`);
  const macros: (readonly [string, string])[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    const name = parts[i] as string;
    if (name === '') return malformed(SMFIC_MACRO, 'empty macro name');
    macros.push([name, parts[i + 1] as string]);
  }
  return { kind: 'macro', stage, macros };
}

function empty(cmd: number, data: Buffer, command: MilterCommand): MilterCommand | MilterProtocolError {
  return data.length === 0 ? command : malformed(cmd, `carries ${data.length} unexpected data bytes`);
}

/** Decode one frame into a command, or say precisely why it is not one. Never throws. */
export function decodeCommand(frame: Frame): MilterCommand | MilterProtocolError {
  const { command: cmd, data } = frame;
  switch (cmd) {
    case SMFIC_OPTNEG:
      if (data.length !== MILTER_OPTLEN) return malformed(cmd, `payload is ${data.length} bytes, expected ${MILTER_OPTLEN}`);
      return { kind: 'optneg', version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8) };
    case SMFIC_MACRO:
      return decodeMacro(data);
    case SMFIC_CONNECT:
      return decodeConnect(data);
    case SMFIC_HELO: {
      const parts = exactStrings(cmd, data, 1, 'one HELO string');
      return parts instanceof MilterProtocolError ? parts : { kind: 'helo', name: parts[0] as string };
    }
    case SMFIC_MAIL:
      return decodeArgv(cmd, data, 'mail');
    case SMFIC_RCPT:
      return decodeArgv(cmd, data, 'rcpt');
    case SMFIC_DATA:
      return empty(cmd, data, { kind: 'data' });
    case SMFIC_HEADER: {
      const parts = exactStrings(cmd, data, 2, 'name and value');
      if (parts instanceof MilterProtocolError) return parts;
      if (parts[0] === '') return malformed(cmd, 'empty header name');
      return { kind: 'header', name: parts[0] as string, value: parts[1] as string };
    }
    case SMFIC_EOH:
      return empty(cmd, data, { kind: 'eoh' });
    case SMFIC_BODY:
      return { kind: 'body', chunk: data };
    case SMFIC_BODYEOB:
      return { kind: 'eom', chunk: data };
    case SMFIC_ABORT:
      return empty(cmd, data, { kind: 'abort' });
    case SMFIC_QUIT:
      return empty(cmd, data, { kind: 'quit' });
    case SMFIC_QUIT_NC:
      return empty(cmd, data, { kind: 'quitNc' });
    case SMFIC_UNKNOWN: {
      const parts = exactStrings(cmd, data, 1, 'one command string');
      return parts instanceof MilterProtocolError ? parts : { kind: 'unknown', command: parts[0] as string };
    }
    default:
      return new MilterProtocolError('MILTER_COMMAND_UNKNOWN', `unknown command byte ${commandName(cmd)}`);
  }
}

// --- encoding (the MTA side: test client and `mta-policy milter-check`) -----------------------

/** UTF-8 bytes of `s` plus a NUL. A NUL inside `s` cannot be framed and is refused. */
export function cString(s: string): Buffer {
  if (s.includes('\0')) throw new MilterUsageError('MILTER_OPTION_INVALID', 'string contains NUL and cannot be sent');
  return Buffer.from(`${s}\0`, 'utf8');
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

const FAMILY_BYTES: Readonly<Record<AddressFamily, number>> = {
  inet: SMFIA_INET,
  inet6: SMFIA_INET6,
  unix: SMFIA_UNIX,
  unknown: SMFIA_UNKNOWN,
};

/** The frame an MTA would send for `command`. Inverse of {@link decodeCommand}. */
export function commandFrame(command: MilterCommand): Frame {
  switch (command.kind) {
    case 'optneg':
      return { command: SMFIC_OPTNEG, data: Buffer.concat([u32(command.version), u32(command.actions), u32(command.protocol)]) };
    case 'macro':
      return {
        command: SMFIC_MACRO,
        data: Buffer.concat([Buffer.from([command.stage & 0xff]), ...command.macros.flatMap(([n, v]) => [cString(n), cString(v)])]),
      };
    case 'connect': {
      const parts = [cString(command.hostname), Buffer.from([FAMILY_BYTES[command.family]])];
      if (command.family !== 'unknown') {
        const port = Buffer.allocUnsafe(2);
        port.writeUInt16BE((command.port ?? 0) & 0xffff, 0);
        parts.push(port, cString(command.address ?? ''));
      }
      return { command: SMFIC_CONNECT, data: Buffer.concat(parts) };
    }
    case 'helo':
      return { command: SMFIC_HELO, data: cString(command.name) };
    case 'mail':
      return { command: SMFIC_MAIL, data: Buffer.concat(command.args.map(cString)) };
    case 'rcpt':
      return { command: SMFIC_RCPT, data: Buffer.concat(command.args.map(cString)) };
    case 'data':
      return { command: SMFIC_DATA, data: Buffer.alloc(0) };
    case 'header':
      return { command: SMFIC_HEADER, data: Buffer.concat([cString(command.name), cString(command.value)]) };
    case 'eoh':
      return { command: SMFIC_EOH, data: Buffer.alloc(0) };
    case 'body':
      return { command: SMFIC_BODY, data: command.chunk };
    case 'eom':
      return { command: SMFIC_BODYEOB, data: command.chunk };
    case 'abort':
      return { command: SMFIC_ABORT, data: Buffer.alloc(0) };
    case 'quit':
      return { command: SMFIC_QUIT, data: Buffer.alloc(0) };
    case 'quitNc':
      return { command: SMFIC_QUIT_NC, data: Buffer.alloc(0) };
    case 'unknown':
      return { command: SMFIC_UNKNOWN, data: cString(command.command) };
  }
}

/** Wire bytes (length prefix included) of `command`. */
export function encodeCommand(command: MilterCommand): Buffer {
  const f = commandFrame(command);
  return encodeFrame(f.command, f.data);
}
