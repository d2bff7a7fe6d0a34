/**
 * Header field names and values (RFC 5322 §2.2, §3.6.8). Pure, total and bounded.
 *
 * One rule for every check that reads a header (sender checks, the header firewall, counts):
 * a field whose name is not `1*ftext` is REFUSED, never canonicalised. `"From "`, `" From"`,
 * `"From:"`, `"From\t"` or a folded name are not spellings of `From`; a message that carries one
 * is malformed (RFC 5322 §2.2: "A field name MUST be composed of printable US-ASCII characters
 * … except colon"), and trimming it instead would make the sender check and the header
 * firewall depend on how each MTA or adapter happened to split the line.
 */
import { asciiLower } from './util.js';

/**
 * RFC 5322 §2.1.1: a line is at most 998 characters excluding CRLF, and a field name must fit
 * on its first line together with the colon, so a name is at most 997 characters.
 */
export const MAX_FIELD_NAME = 997;

/** Default bound for an unfolded value: the engine's per-field cap (input.ts headerValueBytes). */
export const MAX_FIELD_VALUE = 65536;

/**
 * RFC 5322 §3.6.8: `field-name = 1*ftext`, `ftext = %d33-57 / %d59-126` (printable US-ASCII
 * except `:`). Anything else (empty, white space, control characters, a colon, non-ASCII,
 * longer than {@link MAX_FIELD_NAME}) is not a field name.
 */
export function isFieldName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_FIELD_NAME) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 33 || c > 126 || c === 58) return false;
  }
  return true;
}

/**
 * The comparison key of a field name: ASCII lower-case (RFC 5322 §1.2.2: field names are
 * case-insensitive; ASCII folding because a field name is ASCII by definition), or null when
 * {@link isFieldName} refuses the name. Callers must treat null as "refuse the message", not
 * as "no such header".
 */
export function fieldKey(name: string): string | null {
  return isFieldName(name) ? asciiLower(name) : null;
}

/**
 * Unfold a field body (RFC 5322 §2.2.3: "removing any CRLF that is immediately followed by
 * WSP"). A bare LF followed by WSP is unfolded too, because milter MTAs (Postfix, Sendmail)
 * deliver folded values with LF line ends (`"line one\n\tcontinued"`). Returns null when the
 * value is longer than `maxLength` characters, or has a CR or LF that is not part of a fold
 * (RFC 5322 §2.2: CR and LF appear in a field body only in folding). Other characters are the
 * caller's to judge.
 */
export function unfoldFieldValue(value: string, maxLength: number = MAX_FIELD_VALUE): string | null {
  if (value.length > maxLength) return null;
  if (!value.includes('\r') && !value.includes('\n')) return value;
  // A CR not followed by LF, or an LF not followed by WSP, is a line break that is no fold.
  if (/\r(?!\n)|\n(?![ \t])/.test(value)) return null;
  return value.replace(/\r?\n(?=[ \t])/g, '');
}
