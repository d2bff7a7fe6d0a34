/**
 * IP helpers for the configuration loader and the runtime engine.
 *
 * - IPv4 is accepted only in four-part decimal form (`192.0.2.1`); octal/hex/short forms that
 *   `inet_aton` would accept are refused, because they are almost always typos.
 * - IPv6 is accepted in any RFC 4291 text form, without a zone id (`%eth0`).
 * - An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, RFC 4291 §2.5.5.2) *is* the IPv4 address:
 *   it gets family 4. The deprecated IPv4-compatible form (`::192.0.2.1`, §2.5.5.1) is not
 *   mapped: it is the IPv6 address `::c000:201`.
 * - Canonical text: IPv4 dotted decimal, IPv6 RFC 5952 (compressed, lower case).
 * - Values are unsigned bigints: 32-bit for IPv4, 128-bit for IPv6.
 */
import ipaddr from 'ipaddr.js';
import { MtaPolicyError } from './errors.js';

export type IpFamily = 4 | 6;

export interface IpValue {
  readonly family: IpFamily;
  readonly value: bigint;
}

export interface ParsedIp extends IpValue {
  /** Canonical text. */
  readonly text: string;
}

/** An inclusive range of one family (a single IP and a CIDR block are ranges too). */
export interface ParsedRange {
  readonly family: IpFamily;
  readonly first: bigint;
  readonly last: bigint;
}

export interface ParsedBinding {
  /** Canonical local IP, or null for the wildcard (`0.0.0.0` / `[::]`). */
  readonly ip: string | null;
  readonly family: IpFamily;
  readonly port: number;
  /** Canonical text: `0.0.0.0:25`, `[::]:587`, `192.0.2.10:25`, `[2001:db8::1]:25`. */
  readonly text: string;
}

/** Why a text could not be parsed, and how to fix it. */
export interface ParseFailure {
  readonly error: string;
  readonly fix?: string;
}

export function isParseFailure<T>(r: T | ParseFailure): r is ParseFailure {
  return typeof r === 'object' && r !== null && 'error' in r;
}

/** Address width in bits per family: the one definition (the engine's selection index uses it too). */
export const ADDRESS_BITS: Readonly<Record<IpFamily, number>> = { 4: 32, 6: 128 };
const BITS: Record<IpFamily, bigint> = { 4: BigInt(ADDRESS_BITS[4]), 6: BigInt(ADDRESS_BITS[6]) };
const MAX: Record<IpFamily, bigint> = { 4: (1n << BITS[4]) - 1n, 6: (1n << BITS[6]) - 1n };

function v4Value(octets: readonly number[]): bigint {
  let v = 0n;
  for (const o of octets) v = (v << 8n) | BigInt(o);
  return v;
}

function v6Value(parts: readonly number[]): bigint {
  let v = 0n;
  for (const p of parts) v = (v << 16n) | BigInt(p);
  return v;
}

/** Parses an address without turning IPv4-mapped IPv6 into IPv4. */
function parseRaw(text: string): IpValue | null {
  if (text === '') return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    return { family: 4, value: v4Value(ipaddr.IPv4.parse(text).octets) };
  }
  if (text.includes('%') || !text.includes(':')) return null;
  let hex = text;
  if (text.includes('.')) {
    // Embedded IPv4 tail: require the strict dotted form, and rewrite it as two hex groups
    // ourselves, because ipaddr.js reads the IPv4-compatible `::a.b.c.d` as `::ffff:a.b.c.d`.
    const colon = text.lastIndexOf(':');
    const tail = text.slice(colon + 1);
    if (!ipaddr.IPv4.isValidFourPartDecimal(tail)) return null;
    const [a = 0, b = 0, c = 0, d = 0] = ipaddr.IPv4.parse(tail).octets;
    hex = `${text.slice(0, colon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  if (!ipaddr.IPv6.isValid(hex)) return null;
  return { family: 6, value: v6Value(ipaddr.IPv6.parse(hex).parts) };
}

/** IPv4-mapped IPv6 (`::ffff:0:0/96`) becomes IPv4; everything else is returned unchanged. */
function unmap(ip: IpValue): IpValue {
  if (ip.family === 6 && ip.value >> 32n === 0xffffn) {
    return { family: 4, value: ip.value & MAX[4] };
  }
  return ip;
}

/** Canonical text of an address value. */
export function formatIp(family: IpFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const parts: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) parts.push(Number((value >> s) & 0xffffn));
  return new ipaddr.IPv6(parts).toRFC5952String();
}

/** Canonical text of a range: a single IP, or `first-last`. */
export function formatRange(r: ParsedRange): string {
  return r.first === r.last ? formatIp(r.family, r.first) : `${formatIp(r.family, r.first)}-${formatIp(r.family, r.last)}`;
}

/** Memo bound: a full memo is simply cleared (the values are immutable and cheap to recompute). */
const IP_MEMO_LIMIT = 4096;
/** Longer texts are not kept (the longest address text, `ffff:…:255.255.255.255`, has 45 characters). */
const IP_MEMO_KEY_LENGTH = 64;
const ipMemo = new Map<string, ParsedIp | null>();

/**
 * Parses one IP address (surrounding white space ignored); null when it is not one. Memoised on
 * the text: one request parses the same endpoints several times (adapter, endpoint, family
 * check), and each parse through ipaddr.js and bigints costs microseconds.
 */
export function parseIp(text: string): ParsedIp | null {
  const hit = ipMemo.get(text);
  if (hit !== undefined) return hit;
  const raw = parseRaw(text.trim());
  const ip = raw === null ? null : unmap(raw);
  const parsed = ip === null ? null : Object.freeze({ family: ip.family, value: ip.value, text: formatIp(ip.family, ip.value) });
  if (text.length <= IP_MEMO_KEY_LENGTH) {
    if (ipMemo.size >= IP_MEMO_LIMIT) ipMemo.clear();
    ipMemo.set(text, parsed);
  }
  return parsed;
}

/** Canonical text of an IP address, or null when `text` is not one. */
export function canonicalIp(text: string): string | null {
  return parseIp(text)?.text ?? null;
}

/**
 * Family and numeric value of an IP address (IPv4-mapped IPv6 counts as IPv4).
 * Throws `MtaPolicyError` (code `IP_INVALID`) when `ip` is not an address.
 */
export function ipToBigInt(ip: string): IpValue {
  const p = parseIp(ip);
  if (p === null) throw new MtaPolicyError('IP_INVALID', `not an IP address: ${JSON.stringify(ip)}`);
  return { family: p.family, value: p.value };
}

const RANGE_FORMS = 'write a single IP (192.0.2.1), a CIDR block (192.0.2.0/24) or a range (192.0.2.1-192.0.2.30)';

/**
 * Parses a remote IP range: a single IP, a CIDR block `a/n`, or `a-b` (same family, a ≤ b).
 * A CIDR block with host bits set is refused; the fix names the network form.
 */
export function parseIpRange(text: string): ParsedRange | ParseFailure {
  const t = text.trim();
  if (t === '') return { error: 'an IP range must not be empty', fix: RANGE_FORMS };

  const slash = t.indexOf('/');
  if (slash >= 0) {
    const addr = t.slice(0, slash).trim();
    const len = t.slice(slash + 1).trim();
    const raw = parseRaw(addr);
    if (raw === null) {
      return { error: `\`${addr}\` in \`${t}\` is not an IP address`, fix: RANGE_FORMS };
    }
    if (!/^(0|[1-9][0-9]{0,2})$/.test(len)) {
      return { error: `\`/${len}\` in \`${t}\` is not a prefix length`, fix: `write a prefix length from /0 to /${BITS[raw.family]}` };
    }
    const prefix = BigInt(len);
    if (prefix > BITS[raw.family]) {
      return {
        error: `prefix /${len} in \`${t}\` is too long for an IPv${raw.family} address (at most /${BITS[raw.family]})`,
        fix: `write a prefix length from /0 to /${BITS[raw.family]}`,
      };
    }
    const hostBits = BITS[raw.family] - prefix;
    const hostMask = (1n << hostBits) - 1n;
    const first = raw.value & ~hostMask & MAX[raw.family];
    if (first !== raw.value) {
      let suggestion = `${formatIp(raw.family, first)}/${len}`;
      if (raw.family === 6 && first >> 32n === 0xffffn && prefix >= 96n) {
        suggestion = `${formatIp(4, first & MAX[4])}/${prefix - 96n}`;
      }
      return {
        error: `\`${t}\` has host bits set (the /${len} block containing it starts at ${suggestion.slice(0, suggestion.lastIndexOf('/'))})`,
        fix: `did you mean ${suggestion}?`,
      };
    }
    const last = first | hostMask;
    if (raw.family === 6 && first >> 32n === 0xffffn && last >> 32n === 0xffffn) {
      // Entirely inside ::ffff:0:0/96: an IPv4 block in IPv6 notation.
      return { family: 4, first: first & MAX[4], last: last & MAX[4] };
    }
    return { family: raw.family, first, last };
  }

  const dash = t.indexOf('-');
  if (dash >= 0) {
    const aText = t.slice(0, dash).trim();
    const bText = t.slice(dash + 1).trim();
    const a = parseIp(aText);
    const b = parseIp(bText);
    if (a === null || b === null) {
      return { error: `\`${a === null ? aText : bText}\` in \`${t}\` is not an IP address`, fix: RANGE_FORMS };
    }
    if (a.family !== b.family) {
      return {
        error: `\`${t}\` mixes an IPv${a.family} and an IPv${b.family} address`,
        fix: 'write one range per address family',
      };
    }
    if (a.value > b.value) {
      return { error: `\`${t}\` ends before it starts`, fix: `did you mean ${b.text}-${a.text}?` };
    }
    return { family: a.family, first: a.value, last: b.value };
  }

  const ip = parseIp(t);
  if (ip === null) return { error: `\`${t}\` is not an IP address, CIDR block or range`, fix: RANGE_FORMS };
  return { family: ip.family, first: ip.value, last: ip.value };
}

/** The whole address space of one family (Exchange's "all remote addresses"). */
export function allAddresses(family: IpFamily): ParsedRange {
  return { family, first: 0n, last: MAX[family] };
}

/** An IP address with a TCP port, as `parseHostPort` returns it. */
export interface HostPort extends ParsedIp {
  /** 1–65535; null only when `portOptional` was given and no port was written. */
  readonly port: number | null;
}

const HOST_PORT_FORMS = 'write ip:port, e.g. 192.0.2.10:25 or [2001:db8::1]:25';

interface HostPortText {
  readonly host: string;
  readonly port: string | null;
  readonly bracketed: boolean;
}

/** Splits `host:port` / `[v6]:port` (and, when `portOptional`, a bare address) without judging the host. */
function splitHostPort(t: string, portOptional: boolean): HostPortText | ParseFailure {
  if (t.startsWith('[')) {
    const close = t.indexOf(']');
    if (close < 0) return { error: `\`${t}\` has no closing \`]\``, fix: HOST_PORT_FORMS };
    const rest = t.slice(close + 1);
    if (rest === '' && portOptional) return { host: t.slice(1, close), port: null, bracketed: true };
    if (!rest.startsWith(':')) return { error: `\`${t}\` has no port`, fix: `add a port, e.g. ${t}:25` };
    return { host: t.slice(1, close), port: rest.slice(1), bracketed: true };
  }
  // A bare address (IPv6 included, whose colons are not a port separator).
  if (portOptional && parseRaw(t) !== null) return { host: t, port: null, bracketed: false };
  const colon = t.lastIndexOf(':');
  if (colon < 0) return { error: `\`${t}\` has no port`, fix: `add a port, e.g. ${t}:25` };
  const host = t.slice(0, colon);
  const port = t.slice(colon + 1);
  if (host.includes(':') && parseRaw(host) !== null) return { error: `IPv6 address in \`${t}\` must be in brackets`, fix: `write [${host}]:${port}` };
  if (host.includes(':')) return { error: `\`${t}\` is not an IP address with a port`, fix: HOST_PORT_FORMS };
  return { host, port, bracketed: false };
}

function parsePort(portText: string, t: string): number | ParseFailure {
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535) {
    return { error: `\`${portText}\` in \`${t}\` is not a port`, fix: 'use a port from 1 to 65535' };
  }
  return Number(portText);
}

/**
 * Parses `a.b.c.d:port` or `[ipv6]:port` (white space around it ignored) into the canonical
 * address and the port; IPv4-mapped IPv6 becomes IPv4, brackets around IPv4 are refused, and
 * the port is 1–65535. With `portOptional`, a bare address (`192.0.2.1`, `2001:db8::1`,
 * `[2001:db8::1]`) is accepted too, with `port: null`. The one `ip:port` parser: config
 * bindings and the engine's endpoint facts both use it.
 */
export function parseHostPort(text: string, options: { readonly portOptional?: boolean } = {}): HostPort | ParseFailure {
  const t = text.trim();
  const split = splitHostPort(t, options.portOptional === true);
  if (isParseFailure(split)) return split;
  const raw = parseRaw(split.host);
  if (raw === null) return { error: `\`${split.host}\` in \`${t}\` is not an IP address`, fix: HOST_PORT_FORMS };
  if (split.bracketed && raw.family === 4) {
    return { error: `brackets in \`${t}\` are for IPv6 addresses only`, fix: `write ${split.host}${split.port === null ? '' : `:${split.port}`}` };
  }
  const port = split.port === null ? null : parsePort(split.port, t);
  if (isParseFailure(port)) return port;
  const ip = unmap(raw);
  return { family: ip.family, value: ip.value, text: formatIp(ip.family, ip.value), port };
}

const BINDING_FORMS = 'write ip:port, e.g. 0.0.0.0:25 (all IPv4 addresses), [::]:25 (all IPv6 addresses), 192.0.2.10:25 or [2001:db8::1]:25';

/** Parses a local binding `ip:port` or `[ipv6]:port`; `0.0.0.0` and `[::]` are the wildcards. */
export function parseBinding(text: string): ParsedBinding | ParseFailure {
  const t = text.trim();
  const split = splitHostPort(t, false);
  if (!isParseFailure(split) && (split.host === '*' || split.host === '')) {
    const port = split.port ?? '25';
    return { error: `\`${t}\` has no local address`, fix: `write 0.0.0.0:${port} for all IPv4 addresses and [::]:${port} for all IPv6 addresses` };
  }
  const hp = parseHostPort(t);
  if (isParseFailure(hp)) return hp.fix === HOST_PORT_FORMS ? { error: hp.error, fix: BINDING_FORMS } : hp;
  const port = hp.port ?? 0;
  if (hp.value === 0n) {
    return hp.family === 4 ? { ip: null, family: 4, port, text: `0.0.0.0:${port}` } : { ip: null, family: 6, port, text: `[::]:${port}` };
  }
  return { ip: hp.text, family: hp.family, port, text: hp.family === 4 ? `${hp.text}:${port}` : `[${hp.text}]:${port}` };
}

/**
 * The union of `ranges` as disjoint, non-adjacent ranges per family, sorted by family then
 * address (touching or overlapping ranges are merged).
 */
export function mergeRanges(ranges: readonly ParsedRange[]): ParsedRange[] {
  const sorted = [...ranges].sort((a, b) => a.family - b.family || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: { family: IpFamily; first: bigint; last: bigint }[] = [];
  for (const r of sorted) {
    const top = out[out.length - 1];
    if (top !== undefined && top.family === r.family && r.first <= top.last + 1n) {
      if (r.last > top.last) top.last = r.last;
    } else {
      out.push({ family: r.family, first: r.first, last: r.last });
    }
  }
  return out;
}

/** How many addresses of `within` the ranges leave uncovered (ranges of other families ignored). */
export function uncoveredCount(ranges: readonly ParsedRange[], within: readonly ParsedRange[]): bigint {
  let missing = 0n;
  const merged = mergeRanges(ranges);
  for (const w of mergeRanges(within)) {
    let covered = 0n;
    for (const r of merged) {
      if (r.family !== w.family) continue;
      const lo = r.first > w.first ? r.first : w.first;
      const hi = r.last < w.last ? r.last : w.last;
      if (lo <= hi) covered += hi - lo + 1n;
    }
    missing += w.last - w.first + 1n - covered;
  }
  return missing;
}
