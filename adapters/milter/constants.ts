/**
 * Milter protocol version 6 constants, named exactly as in libmilter's `mfdef.h` / `mfapi.h`
 * (Sendmail 8.14+; adapters/spec/milter-v6.md §1 lists the sources). Each value is annotated
 * with its ASCII form where it is a command or reply byte. Review these like code: a wrong
 * byte here desynchronises every MTA.
 */

/** Highest protocol version this implementation speaks (`SMFI_PROT_VERSION`). */
export const SMFI_PROT_VERSION = 6;
/** Bytes in the big-endian length prefix of every packet (`MILTER_LEN_BYTES`). */
export const MILTER_LEN_BYTES = 4;
/** Payload of an OPTNEG packet: version, actions, protocol (`MILTER_OPTLEN`). */
export const MILTER_OPTLEN = 12;
/** Largest body chunk an MTA sends and the largest REPLBODY chunk we send (`MILTER_CHUNK_SIZE`). */
export const MILTER_CHUNK_SIZE = 65535;
/** libmilter's default limit on packet data; Sendmail never sends more unless MDS is negotiated. */
export const MILTER_MDS_64K = 64 * 1024 - 1;
/** Packet data limit selected by `SMFIP_MDS_256K`. */
export const MILTER_MDS_256K = 256 * 1024 - 1;
/** Packet data limit selected by `SMFIP_MDS_1M`. */
export const MILTER_MDS_1M = 1024 * 1024 - 1;

// --- Commands, MTA → milter (SMFIC_*) -------------------------------------------------------
export const SMFIC_ABORT = 0x41; // 'A' abort the current message
export const SMFIC_BODY = 0x42; // 'B' body chunk
export const SMFIC_CONNECT = 0x43; // 'C' connection information
export const SMFIC_MACRO = 0x44; // 'D' define macros
export const SMFIC_BODYEOB = 0x45; // 'E' end of body (final chunk)
export const SMFIC_HELO = 0x48; // 'H' HELO/EHLO
export const SMFIC_QUIT_NC = 0x4b; // 'K' quit, a new connection follows on this socket
export const SMFIC_HEADER = 0x4c; // 'L' one header field
export const SMFIC_MAIL = 0x4d; // 'M' MAIL FROM
export const SMFIC_EOH = 0x4e; // 'N' end of headers
export const SMFIC_OPTNEG = 0x4f; // 'O' option negotiation
export const SMFIC_QUIT = 0x51; // 'Q' quit
export const SMFIC_RCPT = 0x52; // 'R' RCPT TO
export const SMFIC_DATA = 0x54; // 'T' DATA
export const SMFIC_UNKNOWN = 0x55; // 'U' any unknown SMTP command

// --- Replies, milter → MTA (SMFIR_*) --------------------------------------------------------
export const SMFIR_ADDRCPT = 0x2b; // '+' add recipient
export const SMFIR_DELRCPT = 0x2d; // '-' remove recipient
export const SMFIR_ADDRCPT_PAR = 0x32; // '2' add recipient with ESMTP arguments
export const SMFIR_SHUTDOWN = 0x34; // '4' 421 shutdown — internal to the MTA, never sent by us
export const SMFIR_ACCEPT = 0x61; // 'a' accept
export const SMFIR_REPLBODY = 0x62; // 'b' replace body (one chunk)
export const SMFIR_CONTINUE = 0x63; // 'c' continue
export const SMFIR_DISCARD = 0x64; // 'd' discard the message
export const SMFIR_CHGFROM = 0x65; // 'e' change envelope sender
export const SMFIR_CONN_FAIL = 0x66; // 'f' cause a connection failure — defined only, never sent
export const SMFIR_ADDHEADER = 0x68; // 'h' append a header
export const SMFIR_INSHEADER = 0x69; // 'i' insert a header at an index
export const SMFIR_SETSYMLIST = 0x6c; // 'l' set macro list — never a packet; the list rides in OPTNEG
export const SMFIR_CHGHEADER = 0x6d; // 'm' change or delete a header
export const SMFIR_PROGRESS = 0x70; // 'p' progress: restarts the MTA's timer
export const SMFIR_QUARANTINE = 0x71; // 'q' quarantine (not final)
export const SMFIR_REJECT = 0x72; // 'r' reject
export const SMFIR_SKIP = 0x73; // 's' skip further events of this kind
export const SMFIR_TEMPFAIL = 0x74; // 't' temporary failure
export const SMFIR_REPLYCODE = 0x79; // 'y' reply with an explicit SMTP code and text

// --- Actions the milter may request (SMFIF_*), the OPTNEG `actions` word -----------------------
export const SMFIF_NONE = 0x000; // no flags
export const SMFIF_ADDHDRS = 0x001; // SMFIR_ADDHEADER and SMFIR_INSHEADER
export const SMFIF_CHGBODY = 0x002; // SMFIR_REPLBODY (a.k.a. SMFIF_MODBODY)
export const SMFIF_ADDRCPT = 0x004; // SMFIR_ADDRCPT
export const SMFIF_DELRCPT = 0x008; // SMFIR_DELRCPT
export const SMFIF_CHGHDRS = 0x010; // SMFIR_CHGHEADER
export const SMFIF_QUARANTINE = 0x020; // SMFIR_QUARANTINE
export const SMFIF_CHGFROM = 0x040; // SMFIR_CHGFROM
export const SMFIF_ADDRCPT_PAR = 0x080; // SMFIR_ADDRCPT_PAR
export const SMFIF_SETSYMLIST = 0x100; // macro lists in the OPTNEG reply
/** Actions of a version 1 filter; an MTA offering 0 means this (`SMFI_V1_ACTS`). */
export const SMFI_V1_ACTS = 0x00f;
/** All actions defined by version 6 (`SMFI_CURR_ACTS`). */
export const SMFI_CURR_ACTS = 0x1ff;

// --- Protocol flags (SMFIP_*), the OPTNEG `protocol` word ---------------------------------------
// Three kinds share this word: NO* = "don't send me this event", NR_* = "I will never reply to
// this event", and the rest = "the MTA can do X" (adapters/spec/milter-v6.md §3).
export const SMFIP_NOCONNECT = 0x00000001; // don't send SMFIC_CONNECT
export const SMFIP_NOHELO = 0x00000002; // don't send SMFIC_HELO
export const SMFIP_NOMAIL = 0x00000004; // don't send SMFIC_MAIL
export const SMFIP_NORCPT = 0x00000008; // don't send SMFIC_RCPT
export const SMFIP_NOBODY = 0x00000010; // don't send SMFIC_BODY
export const SMFIP_NOHDRS = 0x00000020; // don't send SMFIC_HEADER
export const SMFIP_NOEOH = 0x00000040; // don't send SMFIC_EOH
export const SMFIP_NR_HDR = 0x00000080; // no reply to SMFIC_HEADER (= SMFIP_NOHREPL)
export const SMFIP_NOUNKNOWN = 0x00000100; // don't send SMFIC_UNKNOWN
export const SMFIP_NODATA = 0x00000200; // don't send SMFIC_DATA
export const SMFIP_SKIP = 0x00000400; // MTA understands SMFIR_SKIP
export const SMFIP_RCPT_REJ = 0x00000800; // MTA also sends recipients it rejected
export const SMFIP_NR_CONN = 0x00001000; // no reply to SMFIC_CONNECT
export const SMFIP_NR_HELO = 0x00002000; // no reply to SMFIC_HELO
export const SMFIP_NR_MAIL = 0x00004000; // no reply to SMFIC_MAIL
export const SMFIP_NR_RCPT = 0x00008000; // no reply to SMFIC_RCPT
export const SMFIP_NR_DATA = 0x00010000; // no reply to SMFIC_DATA
export const SMFIP_NR_UNKN = 0x00020000; // no reply to SMFIC_UNKNOWN
export const SMFIP_NR_EOH = 0x00040000; // no reply to SMFIC_EOH
export const SMFIP_NR_BODY = 0x00080000; // no reply to SMFIC_BODY
export const SMFIP_HDR_LEADSPC = 0x00100000; // header values keep their leading space (both ways)
export const SMFIP_MDS_256K = 0x10000000; // packet data limit 256 KiB − 1 (Sendmail internal)
export const SMFIP_MDS_1M = 0x20000000; // packet data limit 1 MiB − 1 (Sendmail internal)
/** Protocol bits of a version 1 filter; an MTA offering 0 means this (`SMFI_V1_PROT`). */
export const SMFI_V1_PROT = 0x0000003f;
/** All protocol bits defined by version 6 (`SMFI_CURR_PROT`). */
export const SMFI_CURR_PROT = 0x001fffff;
/** Bits reserved for MTA ↔ libmilter internals: the MDS sizes (`SMFI_INTERNAL`). */
export const SMFI_INTERNAL = 0x70000000;

// --- Macro stages in a SETSYMLIST request (SMFIM_*) ----------------------------------------------
export const SMFIM_CONNECT = 0; // connect
export const SMFIM_HELO = 1; // HELO/EHLO
export const SMFIM_ENVFROM = 2; // MAIL FROM
export const SMFIM_ENVRCPT = 3; // RCPT TO
export const SMFIM_DATA = 4; // DATA
export const SMFIM_EOM = 5; // end of message (final dot)
export const SMFIM_EOH = 6; // end of headers

// --- Address families in SMFIC_CONNECT (SMFIA_*) -------------------------------------------------
export const SMFIA_UNKNOWN = 0x55; // 'U' unknown: no port, no address follow
export const SMFIA_UNIX = 0x4c; // 'L' unix socket: port 0, then the path
export const SMFIA_INET = 0x34; // '4' IPv4
export const SMFIA_INET6 = 0x36; // '6' IPv6 (Sendmail prefixes the address with "IPv6:")

/** Spec names of every command byte, for logs and errors. */
export const SMFIC_NAMES: ReadonlyMap<number, string> = new Map([
  [SMFIC_ABORT, 'SMFIC_ABORT'],
  [SMFIC_BODY, 'SMFIC_BODY'],
  [SMFIC_CONNECT, 'SMFIC_CONNECT'],
  [SMFIC_MACRO, 'SMFIC_MACRO'],
  [SMFIC_BODYEOB, 'SMFIC_BODYEOB'],
  [SMFIC_HELO, 'SMFIC_HELO'],
  [SMFIC_QUIT_NC, 'SMFIC_QUIT_NC'],
  [SMFIC_HEADER, 'SMFIC_HEADER'],
  [SMFIC_MAIL, 'SMFIC_MAIL'],
  [SMFIC_EOH, 'SMFIC_EOH'],
  [SMFIC_OPTNEG, 'SMFIC_OPTNEG'],
  [SMFIC_QUIT, 'SMFIC_QUIT'],
  [SMFIC_RCPT, 'SMFIC_RCPT'],
  [SMFIC_DATA, 'SMFIC_DATA'],
  [SMFIC_UNKNOWN, 'SMFIC_UNKNOWN'],
]);

/** Spec names of every reply byte, for logs and errors. */
export const SMFIR_NAMES: ReadonlyMap<number, string> = new Map([
  [SMFIR_ADDRCPT, 'SMFIR_ADDRCPT'],
  [SMFIR_DELRCPT, 'SMFIR_DELRCPT'],
  [SMFIR_ADDRCPT_PAR, 'SMFIR_ADDRCPT_PAR'],
  [SMFIR_SHUTDOWN, 'SMFIR_SHUTDOWN'],
  [SMFIR_ACCEPT, 'SMFIR_ACCEPT'],
  [SMFIR_REPLBODY, 'SMFIR_REPLBODY'],
  [SMFIR_CONTINUE, 'SMFIR_CONTINUE'],
  [SMFIR_DISCARD, 'SMFIR_DISCARD'],
  [SMFIR_CHGFROM, 'SMFIR_CHGFROM'],
  [SMFIR_CONN_FAIL, 'SMFIR_CONN_FAIL'],
  [SMFIR_ADDHEADER, 'SMFIR_ADDHEADER'],
  [SMFIR_INSHEADER, 'SMFIR_INSHEADER'],
  [SMFIR_SETSYMLIST, 'SMFIR_SETSYMLIST'],
  [SMFIR_CHGHEADER, 'SMFIR_CHGHEADER'],
  [SMFIR_PROGRESS, 'SMFIR_PROGRESS'],
  [SMFIR_QUARANTINE, 'SMFIR_QUARANTINE'],
  [SMFIR_REJECT, 'SMFIR_REJECT'],
  [SMFIR_SKIP, 'SMFIR_SKIP'],
  [SMFIR_TEMPFAIL, 'SMFIR_TEMPFAIL'],
  [SMFIR_REPLYCODE, 'SMFIR_REPLYCODE'],
]);

/** `SMFIC_HELO` for 0x48, `0x7a` for a byte that is no command. */
export function commandName(byte: number): string {
  return SMFIC_NAMES.get(byte) ?? `0x${byte.toString(16).padStart(2, '0')}`;
}

/** `SMFIR_CONTINUE` for 0x63, `0x7a` for a byte that is no reply. */
export function replyName(byte: number): string {
  return SMFIR_NAMES.get(byte) ?? `0x${byte.toString(16).padStart(2, '0')}`;
}
