/**
 * Header-block helpers for the input builder: field-name validity and the mailboxes of the
 * sender fields. Strict: anything that is not clean RFC 5322 is refused (null / false), never
 * guessed at.
 */
import addressparser from 'nodemailer/lib/addressparser';

/** RFC 5322 §3.6.8: field-name = 1*ftext; ftext = %d33-57 / %d59-126. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

export function isFieldName(name: string): boolean {
  return FIELD_NAME.test(name);
}

/**
 * Every mailbox address in a From / Resent-From (mailbox-list) or Sender / Resent-Sender
 * (single mailbox) value, or null when the value is not a clean mailbox list.
 */
export function fromHeaderMailboxes(value: string, single: boolean): string[] | null {
  // eslint-disable-next-line no-control-regex
  if (/[\0\r\n]/.test(value.replace(/\r\n[ \t]/g, ' '))) return null;
  const unfolded = value.replace(/\r\n([ \t])/g, '$1');
  const parsed = addressparser(unfolded, { flatten: true });
  const list = Array.isArray(parsed) ? parsed : [parsed];
  if (list.length === 0) return null;
  const out: string[] = [];
  for (const entry of list) {
    const address = entry.address ?? '';
    if (address === '' || /\s/.test(address) || (address.match(/@/g) ?? []).length !== 1) return null;
    out.push(address);
  }
  // addressparser folds stray text into display names: count angle-addrs and bare addresses
  // against the entries so `<a@x> <b@y>` or `a@x b@y` is refused rather than half-read.
  const angles = (unfolded.match(/</g) ?? []).length;
  if (angles > out.length || (single && out.length !== 1)) return null;
  return out;
}
