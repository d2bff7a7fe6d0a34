import { toASCII } from 'tr46';
import { canonicalIp } from './ip.js';
import { asciiLower } from './util.js';

/**
 * Domains and envelope addresses, normalised so the Rego never parses strings: a domain is a
 * lower-case A-label without trailing dot, and every routing trick that could make a
 * downstream hop deliver elsewhere (source routes, `%`, `!`, quoted or repeated `@`) is flagged,
 * so an address is judged by where it would really go. Every function
 * here is total (any string in, a result out, never a throw) and bounded by the RFC 5321
 * §4.5.3.1 limits before any work proportional to the input is done.
 */

/** RFC 5321 §4.5.3.1.1: a local part is at most 64 octets. */
const MAX_LOCAL = 64;
/** RFC 5321 §4.5.3.1.2: a domain is at most 255 octets (of UTF-8, for an SMTPUTF8 name). */
const MAX_DOMAIN_TEXT = 255;
/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets, "including the punctuation" `<` `>`. */
const MAX_PATH = 256;
/**
 * RFC 1035 §2.3.4: a label is at most 63 octets and a name at most 255 octets in wire form,
 * which is 253 characters as text without the trailing dot (the bound UTS-46 VerifyDnsLength
 * applies). Stricter than RFC 5321's 255 for the normalised name: a longer one cannot exist in DNS.
 */
const MAX_LABEL = 63;
const MAX_NAME = 253;

/** UTS-46 processing for non-ASCII names: non-transitional, with every validity check on. */
const UTS46 = {
  checkHyphens: true,
  checkBidi: true,
  checkJoiners: true,
  useSTD3ASCIIRules: true,
  verifyDNSLength: true,
  transitionalProcessing: false,
  ignoreInvalidPunycode: false,
} as const;

/** Why a text is not a domain name. */
export type DomainProblem =
  | 'empty'
  | 'too_long'
  | 'empty_label'
  | 'label_too_long'
  | 'character'
  | 'hyphen'
  | 'numeric_tld'
  | 'idna';

export type DomainResult = { readonly ok: true; readonly domain: string } | { readonly ok: false; readonly problem: DomainProblem };

const domainFailure = (problem: DomainProblem): DomainResult => ({ ok: false, problem });

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** UTF-8 length of a string whose UTF-16 length is already bounded. */
function octets(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

const isLetDig = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * RFC 5321 §4.1.2 `Domain = sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`
 * (letters, digits, inner hyphens), labels ≤ 63, name ≤ 253, the last label not all digits
 * (RFC 1123 §2.1, RFC 3696 §2: a top-level domain is never numeric, so `1.2.3.4` is no
 * domain). `xn--` labels must be A-labels: UTS-46 ToASCII must give them back unchanged.
 */
function checkAsciiName(name: string, verifyALabels: boolean): DomainResult {
  if (name.length > MAX_NAME) return domainFailure('too_long');
  let start = 0;
  let aLabels = false;
  let digitsOnly = true;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : 46;
    if (c !== 46) {
      if (!isLetDig(c) && c !== 45) return domainFailure('character');
      if (c < 48 || c > 57) digitsOnly = false;
      continue;
    }
    const length = i - start;
    if (length === 0) return domainFailure('empty_label');
    if (length > MAX_LABEL) return domainFailure('label_too_long');
    if (name.charCodeAt(start) === 45 || name.charCodeAt(i - 1) === 45) return domainFailure('hyphen');
    if (length >= 4 && asciiLower(name.slice(start, start + 4)) === 'xn--') aLabels = true;
    if (i < name.length) digitsOnly = true;
    start = i + 1;
  }
  if (digitsOnly) return domainFailure('numeric_tld');
  const lower = asciiLower(name);
  if (aLabels && verifyALabels && toASCII(lower, UTS46) !== lower) return domainFailure('idna');
  return { ok: true, domain: lower };
}

/**
 * Validate and normalise a domain name, saying why it is refused.
 *
 * An ASCII name is checked against the RFC 5321 grammar FIRST and only case-folded (ASCII
 * folding); nothing is decoded or cut, so `%`, `/`, `?`, `#`, `\`, `@`, spaces, empty labels and
 * edge hyphens are refused instead of being read the way a URL host would be. A name with
 * non-ASCII characters may hold only letters, digits, hyphens and dots among its ASCII
 * characters, goes through UTS-46 ToASCII (non-transitional; STD3 rules, CheckHyphens,
 * CheckBidi, CheckJoiners, VerifyDnsLength) and its A-label result is checked again. One
 * trailing dot is removed. The whole name is handed to UTS-46, because the Bidi rule (RFC 5893)
 * judges a label by the other labels; so an ASCII label with `--` in positions 3–4 (allowed by
 * RFC 5321, refused by CheckHyphens) is accepted in an ASCII name but not beside an IDN label.
 */
export function parseDomain(text: string): DomainResult {
  if (text.length === 0) return domainFailure('empty');
  if (text.length > MAX_DOMAIN_TEXT || octets(text) > MAX_DOMAIN_TEXT) return domainFailure('too_long');
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0) return domainFailure('empty');
  if (isAscii(name)) return checkAsciiName(name, true);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x7f && !isLetDig(c) && c !== 45 && c !== 46) return domainFailure('character');
    // A lone surrogate is not a character and has no UTF-8 form.
    if (c >= 0xd800 && c <= 0xdfff) {
      const pair = c <= 0xdbff && i + 1 < name.length && (name.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      if (!pair) return domainFailure('character');
      i++;
    }
  }
  const ascii = toASCII(name, UTS46);
  if (ascii === null) return domainFailure('idna');
  return checkAsciiName(ascii, false);
}

/** {@link parseDomain} without the reason: the lower-case A-label, or null. Idempotent. */
export function normaliseDomain(text: string): string | null {
  const r = parseDomain(text);
  return r.ok ? r.domain : null;
}

/**
 * The domain a certificate name (SAN dNSName or subject CN) covers: one leading `*.`
 * wildcard label is removed (RFC 6125 §6.4.3: a wildcard only in the left-most label; a
 * partial-label wildcard is not honoured), the rest must be a domain name.
 * `fabrikam.test/evil`, `*.*.x.test`, `f*.x.test` → null.
 */
export function certificateDomain(name: string): string | null {
  return normaliseDomain(name.startsWith('*.') ? name.slice(2) : name);
}

/** Proper parent domains, closest first (`a.b.test` → [`b.test`, `test`]). */
export function parentDomains(domain: string): string[] {
  const parents: string[] = [];
  for (let i = domain.indexOf('.'); i !== -1; i = domain.indexOf('.', i + 1)) parents.push(domain.slice(i + 1));
  return parents;
}

// ---------------------------------------------------------------------------------------------
// Envelope paths (RFC 5321 §4.1.2)
// ---------------------------------------------------------------------------------------------

/** Why a path is invalid. */
export type PathProblem =
  | 'too_long'
  | 'control'
  | 'brackets'
  | 'route'
  | 'local'
  | 'local_too_long'
  | 'multiple_at'
  | 'domain'
  | 'literal';

/** An envelope address, normalised for the policy, with its routing tricks flagged. */
export interface NormalisedAddress {
  readonly raw: string;
  /** The null reverse-path `<>`. */
  readonly null: boolean;
  readonly valid: boolean;
  /** Why it is invalid; null when valid. */
  readonly problem: PathProblem | null;
  /** Only ASCII characters (otherwise SMTPUTF8 is required). */
  readonly ascii: boolean;
  /** The local part as written (a quoted one with its quotes). */
  readonly local: string;
  /** Lower-case A-label, or `[ip]` for a literal; empty when invalid. */
  readonly domain: string;
  /**
   * `local@domain`, the key for identity and send-as lookups: the local part in its canonical
   * form (a quoted string that needs no quotes is unquoted, RFC 5321 §4.1.2, so `"ceo"@x` and
   * `ceo@x` have one key) and ASCII lower-cased, never Unicode-folded.
   */
  readonly key: string;
  /** Canonical IP of a domain literal (`user@[192.0.2.1]`), else null. */
  readonly literal: string | null;
  /** Proper parent domains, closest first (`a.b.test` → [`b.test`, `test`]). */
  readonly parents: readonly string[];
  readonly routing: {
    readonly source_route: boolean;
    readonly percent: boolean;
    readonly bang: boolean;
    readonly quoted_at: boolean;
    readonly multiple_at: boolean;
  };
}

const NO_ROUTING = { source_route: false, percent: false, bang: false, quoted_at: false, multiple_at: false };

function invalid(raw: string, ascii: boolean, problem: PathProblem): NormalisedAddress {
  return { raw, null: false, valid: false, problem, ascii, local: '', domain: '', key: '', literal: null, parents: [], routing: NO_ROUTING };
}

/** RFC 5322 §3.2.3 `atext` (RFC 5321 §4.1.2 uses it for Atom), without the RFC 6531 non-ASCII. */
const ATEXT_PUNCT = "!#$%&'*+-/=?^_`{|}~";
const isAtext = (c: number): boolean => isLetDig(c) || (c < 0x80 && ATEXT_PUNCT.includes(String.fromCharCode(c))) || c >= 0xa0;

/**
 * Characters no path may hold: C0 and C1 controls, DEL, and lone surrogates (no UTF-8 form).
 * Returns true when the text is clean.
 */
function clean(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return false;
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c > 0xdbff || (s.charCodeAt(i + 1) & 0xfc00) !== 0xdc00) return false;
      i++;
    }
  }
  return true;
}

/**
 * An unquoted local part: atext (RFC 6531 §3.3: plus non-ASCII) and dots, every `@`-separated
 * segment with at least one atext. Dots are not held to RFC 5321's `Atom *("." Atom)`
 * (`a..b`, `.a`, `a.` pass) as Postfix and Sendmail do by default: dots route nothing, and a
 * key is compared exactly, so such a local part can never stand for another.
 */
function localSegmentsValid(local: string): boolean {
  let atext = false;
  for (let i = 0; i <= local.length; i++) {
    const c = i < local.length ? local.charCodeAt(i) : 64;
    if (c === 64) {
      if (!atext) return false;
      atext = false;
    } else if (isAtext(c)) atext = true;
    else if (c !== 46) return false;
  }
  return true;
}

/**
 * A quoted local part `"…"` at the start of `path`: RFC 5321 `qtextSMTP` (%d32-33, %d35-91,
 * %d93-126, RFC 6531 non-ASCII) and `quoted-pairSMTP` (`\` %d32-126). Returns the index of the
 * closing quote and the unescaped content, or null.
 */
function quotedLocal(path: string): { end: number; content: string } | null {
  let content = '';
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 34) return { end: i, content };
    if (c === 92) {
      const next = path.charCodeAt(i + 1);
      if (!(next >= 32 && next <= 126)) return null;
      content += path[i + 1];
      i++;
    } else content += path[i];
  }
  return null;
}

/** The canonical spelling of a local part's content: bare when it needs no quotes. */
function canonicalLocal(content: string): string {
  if (content !== '' && !content.includes('@') && localSegmentsValid(content)) return content;
  return `"${content.replace(/["\\]/g, '\\$&')}"`;
}

function trimWsp(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return s.slice(a, b);
}

function parseAnyPath(input: string, reverse: boolean): NormalisedAddress {
  const raw = trimWsp(input);
  const ascii = isAscii(raw);
  const bracketed = raw.startsWith('<') && raw.endsWith('>') && raw.length >= 2;
  // Bound before any work: 256 octets including the brackets (added when the adapter stripped them).
  if (raw.length > MAX_PATH || octets(raw) + (bracketed ? 0 : 2) > MAX_PATH) return invalid(raw, ascii, 'too_long');
  if (!clean(raw)) return invalid(raw, ascii, 'control');
  if (!bracketed && (raw.startsWith('<') || raw.endsWith('>'))) return invalid(raw, ascii, 'brackets');
  let path = bracketed ? raw.slice(1, -1) : raw;
  if (path === '') {
    if (!bracketed) return invalid(raw, ascii, 'local');
    return { ...invalid(raw, ascii, 'local'), null: true, valid: true, problem: null };
  }

  // Source route (RFC 5321 §4.1.1.3, Appendix C): decided on the final mailbox.
  let sourceRoute = false;
  if (path.startsWith('@')) {
    const colon = path.indexOf(':');
    if (colon === -1) return invalid(raw, ascii, 'route');
    for (const hop of path.slice(0, colon).split(',')) {
      if (!hop.startsWith('@') || normaliseDomain(hop.slice(1)) === null) return invalid(raw, ascii, 'route');
    }
    sourceRoute = true;
    path = path.slice(colon + 1);
  }

  let local: string;
  let content: string;
  let rest: string;
  let quoted = false;
  if (path.startsWith('"')) {
    const q = quotedLocal(path);
    if (q === null || path[q.end + 1] !== '@') return invalid(raw, ascii, 'local');
    local = path.slice(0, q.end + 1);
    content = q.content;
    rest = path.slice(q.end + 2);
    quoted = true;
  } else {
    const at = path.lastIndexOf('@');
    if (at <= 0) return invalid(raw, ascii, 'local');
    local = path.slice(0, at);
    content = local;
    rest = path.slice(at + 1);
    if (!localSegmentsValid(local)) return invalid(raw, ascii, 'local');
  }
  if (octets(local) > MAX_LOCAL) return invalid(raw, ascii, 'local_too_long');
  const multipleAt = !quoted && local.includes('@');
  // A sender's address is its owner's identity: several `@` make it ambiguous, never routed.
  if (multipleAt && reverse) return invalid(raw, ascii, 'multiple_at');

  let domain: string;
  let literal: string | null = null;
  if (rest.startsWith('[')) {
    // RFC 5321 §4.1.3: `[IPv4]` or `[IPv6:…]`; other tagged literals are not understood.
    if (!rest.endsWith(']')) return invalid(raw, ascii, 'literal');
    const inner = rest.slice(1, -1);
    const tagged = /^ipv6:/i.test(inner);
    const ipText = tagged ? inner.slice(5) : inner;
    if (tagged !== ipText.includes(':')) return invalid(raw, ascii, 'literal');
    literal = canonicalIp(ipText);
    if (literal === null) return invalid(raw, ascii, 'literal');
    domain = `[${literal}]`;
  } else {
    const d = normaliseDomain(rest);
    if (d === null) return invalid(raw, ascii, 'domain');
    domain = d;
  }
  return {
    raw,
    null: false,
    valid: true,
    problem: null,
    ascii,
    local,
    domain,
    key: `${asciiLower(quoted ? canonicalLocal(content) : local)}@${domain}`,
    literal,
    parents: literal === null ? parentDomains(domain) : [],
    routing: {
      source_route: sourceRoute,
      percent: content.includes('%'),
      bang: content.includes('!'),
      quoted_at: quoted && content.includes('@'),
      multiple_at: multipleAt,
    },
  };
}

/**
 * Parse an SMTP forward-path (RCPT TO): `<local@domain>`, `local@domain`,
 * `<@route,@route:local@domain>`; `<>` is returned as the null path for the caller to judge.
 * Several `@` in an unquoted local part are flagged (`routing.multiple_at`), the last `@`
 * naming the domain. Total: garbage yields `valid: false` with a `problem`.
 */
export function parsePath(input: string): NormalisedAddress {
  return parseAnyPath(input, false);
}

/**
 * Parse an SMTP reverse-path (MAIL FROM), also used for header mailboxes: as
 * {@link parsePath}, but an unquoted local part with several `@`
 * (`<a@victim.test@northwind.test>`) is invalid (`problem: 'multiple_at'`), because a sender
 * address is matched as an identity and such a one has no single owner.
 */
export function parseReversePath(input: string): NormalisedAddress {
  return parseAnyPath(input, true);
}
