/**
 * Originator header fields (From, Sender, Resent-From, Resent-Sender): RFC 5322 §3.4
 * `mailbox-list` / `address-list` (groups allowed in From, RFC 6854 §2.1; UTF-8, RFC 6532 §3.2)
 * → EVERY mailbox address it holds, or a refusal. A value that is not a clean list is refused,
 * never guessed at: the sender check is only as good as the list it is given, and a lenient
 * parser that keeps "the first address" lets `<nancy@x> <ceo@x>` pass as nancy.
 *
 * Accepted: the RFC 5322 grammar without its obsolete forms, except `obs-phrase` (a `.` in an
 * unquoted display name, `John Q. Public <jq@x>`, which is common and carries no address).
 * RFC 2047 encoded-words are atoms and need no decoding: a display name is never an address.
 * Refused with a reason: junk between or after mailboxes, two addresses in one mailbox,
 * unbalanced quotes, comments, brackets or groups, text without an address, empty values,
 * several `@`, obsolete routes / local parts / domains / empty list elements, control
 * characters, line breaks that are not folds, and values beyond the limits below.
 *
 * Linear in the input: one pass to unfold and tokenise, one over the tokens; no recursion
 * (comment nesting is a counter), so no input can exhaust the stack or backtrack.
 */
import { parseReversePath, type NormalisedAddress } from './address.js';
import { unfoldFieldValue } from './header-fields.js';

export const MAILBOX_LIST_LIMITS = {
  /** RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998 characters" (CRLF excluded). */
  lineLength: 998,
  /** A whole folded value, in characters: the engine's per-field cap (input.ts headerValueBytes). */
  valueLength: 65536,
  /** Mailboxes per field, groups flattened; more is refused, never truncated. */
  mailboxes: 100,
} as const;

/** Why a value is not a clean mailbox list. */
export type MailboxListProblem =
  | 'empty'
  | 'too_long'
  | 'line_too_long'
  | 'too_many'
  | 'control'
  | 'unbalanced_quote'
  | 'unbalanced_comment'
  | 'unbalanced_angle'
  | 'unbalanced_literal'
  | 'unterminated_group'
  | 'nested_group'
  | 'group_not_allowed'
  | 'not_single'
  | 'no_address'
  | 'two_addresses'
  | 'multiple_at'
  | 'route'
  | 'obsolete'
  | 'junk';

export type MailboxListResult =
  | { readonly ok: true; readonly addresses: readonly string[] }
  | { readonly ok: false; readonly reason: MailboxListProblem };

export interface MailboxListOptions {
  /** Sender / Resent-Sender: exactly one mailbox, no group (RFC 5322 §3.6.2). */
  readonly single?: boolean;
}

type Token =
  | { readonly kind: 'atom'; readonly text: string; readonly ws: boolean }
  | { readonly kind: 'quoted'; readonly text: string; readonly ws: boolean }
  | { readonly kind: 'literal'; readonly text: string; readonly ws: boolean }
  | { readonly kind: 'special'; readonly text: string; readonly ws: boolean };

/** Carries a refusal out of the parser to parseMailboxList, which returns it; never escapes. */
class Refusal {
  constructor(readonly reason: MailboxListProblem) {}
}

/** RFC 5322 §3.2.3 atext, plus RFC 6532 non-ASCII (C1 controls are refused before, by UNCLEAN). */
const ATEXT_ASCII = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~") ATEXT_ASCII[ch.charCodeAt(0)] = 1;
const isAtext = (c: number): boolean => (c < 128 ? ATEXT_ASCII[c] === 1 : c >= 0xa0);
/** RFC 5322 §3.2.3 specials that structure a list (`(`, `"`, `[`, `\` are scanned separately). */
const STRUCTURE = '<>@,;:.';

/**
 * Controls (other than HTAB), DEL, C1 controls and lone surrogates have no place in an
 * address field (RFC 5322 §4.1: they occur only in obsolete forms; RFC 6532 adds UTF-8
 * characters, not controls: §3.2). One linear regular expression, no nested quantifiers.
 */
// eslint-disable-next-line no-control-regex
const UNCLEAN = /[\x00-\x08\x0a-\x1f\x7f-\x9f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The longest line of a (folded) value; lines end at LF (a CR is refused by unfolding). */
function longestLine(value: string): number {
  let longest = 0;
  let start = 0;
  for (;;) {
    const lf = value.indexOf('\n', start);
    const end = lf === -1 ? value.length : lf;
    longest = Math.max(longest, end - start - (value.charCodeAt(end - 1) === 13 ? 1 : 0));
    if (lf === -1) return longest;
    start = lf + 1;
  }
}

/** Runs of atext (RFC 6532 non-ASCII included) and of WSP, matched where the scan stands. */
const ATOM_RUN = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u00a0-\uffff]+/y;
const WSP_RUN = /[ \t]+/y;

/** Unfolded text → tokens; CFWS is dropped, remembered as `ws` on the token after it. */
function tokenise(text: string): Token[] {
  const tokens: Token[] = [];
  let ws = false;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9) {
      WSP_RUN.lastIndex = i;
      WSP_RUN.test(text);
      ws = true;
      i = WSP_RUN.lastIndex;
    } else if (c === 40) {
      // comment (RFC 5322 §3.2.2), nested; quoted-pairs inside.
      let depth = 0;
      for (; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 40) depth++;
        else if (d === 41 && --depth === 0) break;
      }
      if (depth !== 0 || i >= text.length) throw new Refusal('unbalanced_comment');
      ws = true;
      i++;
    } else if (c === 41) {
      throw new Refusal('unbalanced_comment');
    } else if (c === 34) {
      // quoted-string (RFC 5322 §3.2.4): qtext, WSP and quoted-pairs; the value unescaped.
      let content = '';
      let closed = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 34) {
          closed = true;
          break;
        }
        if (d === 92) {
          if (i + 1 >= text.length) break;
          i++;
        }
        content += text[i];
      }
      if (!closed) throw new Refusal('unbalanced_quote');
      tokens.push({ kind: 'quoted', text: content, ws });
      ws = false;
      i++;
    } else if (c === 91) {
      // domain-literal (RFC 5322 §3.4.1): dtext only; no FWS, no quoted-pairs (both obsolete or unused).
      const end = text.indexOf(']', i);
      if (end === -1) throw new Refusal('unbalanced_literal');
      const inner = text.slice(i + 1, end);
      for (let k = 0; k < inner.length; k++) {
        const d = inner.charCodeAt(k);
        if (d === 91 || d === 92 || d === 32 || d === 9) throw new Refusal('junk');
      }
      tokens.push({ kind: 'literal', text: `[${inner}]`, ws });
      ws = false;
      i = end + 1;
    } else if (isAtext(c)) {
      ATOM_RUN.lastIndex = i;
      ATOM_RUN.test(text);
      const j = ATOM_RUN.lastIndex;
      tokens.push({ kind: 'atom', text: text.slice(i, j), ws });
      ws = false;
      i = j;
    } else if (STRUCTURE.includes(text[i] ?? '')) {
      tokens.push({ kind: 'special', text: text[i] ?? '', ws });
      ws = false;
      i++;
    } else {
      throw new Refusal(c === 93 ? 'unbalanced_literal' : 'junk'); // `]`, `\` outside a quoted string
    }
  }
  return tokens;
}

const isSpecial = (t: Token | undefined, s: string): boolean => t !== undefined && t.kind === 'special' && t.text === s;
const isWord = (t: Token | undefined): boolean => t !== undefined && (t.kind === 'atom' || t.kind === 'quoted');

/** An addr-spec as text: a quoted local part re-quoted with minimal escaping. */
function quote(content: string): string {
  return `"${content.replace(/["\\]/g, '\\$&')}"`;
}

class Parser {
  private i = 0;
  readonly addresses: string[] = [];

  constructor(
    private readonly tokens: readonly Token[],
    private readonly single: boolean,
  ) {}

  private peek(offset = 0): Token | undefined {
    return this.tokens[this.i + offset];
  }

  list(): void {
    for (;;) {
      this.address();
      const t = this.peek();
      if (t === undefined) return;
      if (!isSpecial(t, ',')) throw new Refusal(isSpecial(t, '<') ? 'two_addresses' : isSpecial(t, '>') ? 'unbalanced_angle' : 'junk');
      this.i++;
      if (this.peek() === undefined || isSpecial(this.peek(), ',')) throw new Refusal('obsolete'); // obs-addr-list empty element
      if (this.single) throw new Refusal('not_single');
    }
  }

  /** What follows the words at the cursor decides: `<` name-addr, `:` group, `@` addr-spec. */
  private lookahead(): string {
    let k = this.i;
    while (isWord(this.tokens[k]) || isSpecial(this.tokens[k], '.')) k++;
    const t = this.tokens[k];
    return t?.kind === 'special' ? t.text : 'end';
  }

  private address(): void {
    if (this.lookahead() !== ':') return this.mailbox();
    if (this.single) throw new Refusal('group_not_allowed');
    this.displayName(true);
    this.i++; // ':'
    if (!isSpecial(this.peek(), ';')) {
      for (;;) {
        if (this.peek() === undefined) throw new Refusal('unterminated_group');
        if (this.lookahead() === ':') throw new Refusal('nested_group');
        this.mailbox();
        const t = this.peek();
        if (isSpecial(t, ';')) break;
        if (t === undefined) throw new Refusal('unterminated_group');
        if (!isSpecial(t, ',')) throw new Refusal(isSpecial(t, '<') ? 'two_addresses' : 'junk');
        this.i++;
        if (isSpecial(this.peek(), ',') || isSpecial(this.peek(), ';')) throw new Refusal('obsolete'); // obs-group-list
      }
    }
    this.i++; // ';' (an empty group adds no mailbox; a list with none at all is refused at the end)
  }

  private mailbox(): void {
    const next = this.lookahead();
    if (next === '<') {
      this.displayName(false);
      this.i++; // '<'
      if (isSpecial(this.peek(), '@')) throw new Refusal('route'); // obs-route
      if (isSpecial(this.peek(), '>')) throw new Refusal('no_address'); // `<>` is no mailbox
      this.addrSpec();
      const t = this.peek();
      if (t === undefined) throw new Refusal('unbalanced_angle');
      if (!isSpecial(t, '>')) throw new Refusal(isSpecial(t, '<') ? 'unbalanced_angle' : 'junk');
      this.i++;
    } else if (next === '@') {
      this.addrSpec();
    } else if (next === '>') {
      throw new Refusal('unbalanced_angle');
    } else {
      throw new Refusal('no_address');
    }
    if (this.addresses.length > MAILBOX_LIST_LIMITS.mailboxes) throw new Refusal('too_many');
  }

  /**
   * RFC 5322 `phrase` (1*word), or `obs-phrase` (`word *(word / "." / CFWS)`); optional before
   * an angle-addr, required for a group.
   */
  private displayName(required: boolean): void {
    if (!isWord(this.peek())) {
      if (isSpecial(this.peek(), '.')) throw new Refusal('obsolete');
      if (required) throw new Refusal('junk');
      return;
    }
    while (isWord(this.peek()) || isSpecial(this.peek(), '.')) this.i++;
  }

  /** RFC 5322 §3.4.1 `addr-spec = local-part "@" domain`, dot-atom or quoted / literal forms. */
  private addrSpec(): void {
    const local = this.peek();
    let localText: string;
    if (local?.kind === 'quoted') {
      this.i++;
      localText = quote(local.text);
    } else {
      localText = this.dotAtom();
    }
    // `"a".b@x` is obs-local-part; anything else before the `@` is text outside the address.
    if (!isSpecial(this.peek(), '@')) throw new Refusal(isSpecial(this.peek(), '.') ? 'obsolete' : 'junk');
    this.i++;
    const domain = this.peek();
    let domainText: string;
    if (isSpecial(domain, '@')) throw new Refusal('multiple_at');
    if (domain?.kind === 'literal') {
      this.i++;
      domainText = domain.text;
    } else {
      domainText = this.dotAtom();
    }
    const t = this.peek();
    if (isSpecial(t, '@')) throw new Refusal('multiple_at');
    if (isSpecial(t, '.') || t?.kind === 'quoted') throw new Refusal('obsolete'); // obs-domain
    if (t !== undefined && !t.ws && t.kind !== 'special') throw new Refusal('junk');
    this.addresses.push(`${localText}@${domainText}`);
  }

  /** `dot-atom-text = 1*atext *("." 1*atext)` with no CFWS inside (that is obs-local-part / obs-domain). */
  private dotAtom(): string {
    let t = this.peek();
    if (t?.kind !== 'atom') throw new Refusal('junk');
    let text = t.text;
    this.i++;
    while (isSpecial(this.peek(), '.')) {
      const dot = this.peek();
      const atom = this.peek(1);
      if (dot?.ws === true) throw new Refusal('obsolete');
      if (atom?.kind !== 'atom' || atom.ws) throw new Refusal(atom?.kind === 'quoted' || atom?.ws === true ? 'obsolete' : 'junk');
      text += `.${atom.text}`;
      this.i += 2;
    }
    t = this.peek();
    if (t?.kind === 'quoted' && !t.ws) throw new Refusal('obsolete');
    return text;
  }
}

/**
 * Parse an originator field's value into every mailbox address it holds (groups flattened,
 * comments and display names dropped, folding undone), or refuse it with a reason. Each
 * address is an addr-spec as text (`local@domain`, a quoted local part re-quoted), to be
 * normalised with {@link mailboxAddress}. Total: never throws.
 */
export function parseMailboxList(value: string, opts: MailboxListOptions = {}): MailboxListResult {
  if (value.length > MAILBOX_LIST_LIMITS.valueLength) return { ok: false, reason: 'too_long' };
  if (longestLine(value) > MAILBOX_LIST_LIMITS.lineLength) return { ok: false, reason: 'line_too_long' };
  const text = unfoldFieldValue(value, MAILBOX_LIST_LIMITS.valueLength);
  if (text === null || UNCLEAN.test(text)) return { ok: false, reason: 'control' };
  try {
    const tokens = tokenise(text);
    if (tokens.length === 0) return { ok: false, reason: 'empty' };
    const parser = new Parser(tokens, opts.single === true);
    parser.list();
    if (parser.addresses.length === 0) return { ok: false, reason: 'no_address' };
    return { ok: true, addresses: parser.addresses };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.reason };
    throw e;
  }
}

/**
 * One mailbox address from {@link parseMailboxList}, normalised as an envelope sender is
 * (RFC 5321 limits, domain via `normaliseDomain`, several `@` invalid, ASCII-folded key):
 * `valid: false` when the header's address is no usable address.
 */
export function mailboxAddress(addrSpec: string): NormalisedAddress {
  return parseReversePath(`<${addrSpec}>`);
}

export type OriginatorResult =
  | { readonly ok: true; readonly addresses: readonly NormalisedAddress[] }
  | { readonly ok: false; readonly reason: MailboxListProblem };

/**
 * {@link parseMailboxList} then {@link mailboxAddress} for each address: what a sender check
 * reads. `ok: true` may still hold addresses with `valid: false` (an address that is
 * well-formed RFC 5322 but no usable RFC 5321 address, e.g. `u@victim.test%2eus.test`); the
 * policy must refuse those as it refuses an invalid MAIL FROM.
 */
export function originatorAddresses(value: string, opts: MailboxListOptions = {}): OriginatorResult {
  const list = parseMailboxList(value, opts);
  return list.ok ? { ok: true, addresses: list.addresses.map(mailboxAddress) } : list;
}
