import emailAddresses from 'email-addresses';
import { describe, expect, it } from 'vitest';
import { unfoldFieldValue } from '../engine/header-fields.js';
import { MAILBOX_LIST_LIMITS, mailboxAddress, originatorAddresses, parseMailboxList } from '../engine/mailbox.js';
import { fuzz, int, mutate, pick, type Rand } from './helpers/fuzz.js';

const N = 'nancy@northwind.test';
const C = 'ceo@northwind.test';

describe('parseMailboxList: the send-as attack corpus', () => {
  // Each value is refused, or yields EVERY address it holds: never only the first.
  it.each<[string, string | readonly string[]]>([
    [`<${N}> <${C}>`, 'two_addresses'],
    [`<${N}>\r\n\t<${C}>`, 'two_addresses'],
    [`<${N}>\n\t<${C}>`, 'two_addresses'],
    [`Nancy <${N}> <${C}>`, 'two_addresses'],
    [`${N} <${C}>`, 'two_addresses'],
    [`${N} ${C}`, 'junk'],
    [`${N}\r\n ${C}`, 'junk'],
    [`<${C}>${N}`, 'junk'],
    [`<${C}> ${N}`, 'junk'],
    [`${N};${C}`, 'junk'],
    [`${N}, ${C}`, [N, C]],
    [`${N},\r\n\t${C}`, [N, C]],
    [`${N},\n\t${C}`, [N, C]], // milter MTAs fold with a bare LF
    [`Team: ${N}, ${C};`, [N, C]],
    [`Team:\r\n ${N},\r\n\t${C};`, [N, C]],
    [`Team: ${N};, ${C}`, [N, C]],
    [`Undisclosed:;, ${C}`, [C]],
    [`(x) ${N} (y)`, [N]],
    [`(x (nested (deeper))) ${N} (y)`, [N]],
    [`"${N}" <${C}>`, [C]], // the display name looks like an address; the address is ceo
    [`${C} (${N})`, [C]],
    [`=?utf-8?q?nancy?= <${C}>`, [C]],
    [`=?utf-8?B?bmFuY3lAbm9ydGh3aW5kLnRlc3Q=?= <${C}>`, [C]],
    [`"nancy <${C}>`, 'unbalanced_quote'],
    [`Nancy <${C}`, 'unbalanced_angle'],
    [`${C}>`, 'unbalanced_angle'],
    [`${C} (nancy`, 'unbalanced_comment'],
    [`${C} nancy)`, 'unbalanced_comment'],
    [`${C.replace('@', '@[')}`, 'unbalanced_literal'],
    [`Team: ${N}, ${C}`, 'unterminated_group'],
    [`A: B: ${C};;`, 'nested_group'],
    [`${N}\u0000${C}`, 'control'],
    [`${N}\r${C}`, 'control'],
    [`${N}\n${C}`, 'control'],
    [`${N}\r\n${C}`, 'control'], // a line break that is not a fold
    [`${N},\r\n`, 'control'],
    [`Nancy\u007f <${C}>`, 'control'],
    [`Nancy\u0085 <${C}>`, 'control'],
    [`a@victim.test@northwind.test`, 'multiple_at'],
    [`<a@victim.test@northwind.test>`, 'multiple_at'],
    [`<@hop.test:${C}>`, 'route'],
    [`<@hop.test,@b.test:${C}>`, 'route'],
    [`nancy . x@northwind.test`, 'obsolete'],
    [`nancy@northwind . test`, 'obsolete'],
    [`"a".b@northwind.test`, 'obsolete'],
    [`${N},,${C}`, 'obsolete'],
    [`${N},`, 'obsolete'],
    ['ceo', 'no_address'],
    ['Davolio, Nancy <nancy@northwind.test>', 'no_address'],
    ['Undisclosed:;', 'no_address'],
    ['=?utf-8?q?CEO?= <>', 'no_address'],
    ['', 'empty'],
    ['  \t ', 'empty'],
    ['(only a comment)', 'empty'],
    ['Nancy nancy@northwind.test', 'junk'],
    [`${N} \\ x`, 'junk'],
    ['a'.repeat(10_000), 'line_too_long'],
    [`${'x'.repeat(999)} <${C}>`, 'line_too_long'],
    [`${'(x)\r\n '.repeat(20_000)}${C}`, 'too_long'],
    [Array.from({ length: 1000 }, (_, i) => `u${i}@northwind.test`).join(',\r\n '), 'too_many'],
  ])('%j', (value, expected) => {
    const r = parseMailboxList(value);
    if (typeof expected === 'string') expect(r).toEqual({ ok: false, reason: expected });
    else expect(r).toEqual({ ok: true, addresses: expected });
  });

  it('keeps up to the cap, in order, and refuses one more', () => {
    const list = (n: number): string => Array.from({ length: n }, (_, i) => `User ${i} <u${i}@northwind.test>`).join(',\r\n ');
    const r = parseMailboxList(list(MAILBOX_LIST_LIMITS.mailboxes));
    expect(r.ok && r.addresses.length).toBe(MAILBOX_LIST_LIMITS.mailboxes);
    expect(r.ok && r.addresses[99]).toBe('u99@northwind.test');
    expect(parseMailboxList(list(MAILBOX_LIST_LIMITS.mailboxes + 1))).toEqual({ ok: false, reason: 'too_many' });
  });

  it('reads a long folded value whose lines are within 998 characters', () => {
    const value = `${'=?utf-8?q?a?= '.repeat(3000).replace(/(.{900}) /g, '$1\r\n ')}<${C}>`;
    expect(value.length).toBeGreaterThan(10_000);
    expect(parseMailboxList(value)).toEqual({ ok: true, addresses: [C] });
  });
});

describe('parseMailboxList: valid RFC 5322 forms', () => {
  it.each<[string, readonly string[]]>([
    [N, [N]],
    [`<${N}>`, [N]],
    [`Nancy Davolio <${N}>`, [N]],
    [`"Davolio, Nancy" <${N}>`, [N]],
    [`John Q. Public <${N}>`, [N]], // obs-phrase: a dot in a display name
    [`Nancy<${N}>`, [N]],
    [`  Nancy   <  ${N}  >  `, [N]],
    [`nancy @ northwind.test`, [N]], // CFWS around a dot-atom
    [`nancy(c)@(d)northwind.test`, [N]],
    [`"john doe"@northwind.test`, ['"john doe"@northwind.test']],
    [`"jo\\"hn"@northwind.test`, ['"jo\\"hn"@northwind.test']],
    [`"j\\ohn"@northwind.test`, ['"john"@northwind.test']],
    [`nancy@[192.0.2.1]`, ['nancy@[192.0.2.1]']],
    [`Pelé <pelé@bücher.test>`, ['pelé@bücher.test']], // RFC 6532
    [`"Nancy (not a comment)" <${N}>`, [N]],
    [`Nancy (the <ceo@northwind.test>) <${N}>`, [N]],
  ])('%j', (value, addresses) => {
    expect(parseMailboxList(value)).toEqual({ ok: true, addresses });
  });

  it('takes one mailbox for Sender / Resent-Sender', () => {
    expect(parseMailboxList(`Nancy <${N}>`, { single: true })).toEqual({ ok: true, addresses: [N] });
    expect(parseMailboxList(`${N}, ${C}`, { single: true })).toEqual({ ok: false, reason: 'not_single' });
    expect(parseMailboxList(`Team: ${N};`, { single: true })).toEqual({ ok: false, reason: 'group_not_allowed' });
  });
});

describe('originatorAddresses: every mailbox normalised as a sender', () => {
  it('normalises each address like MAIL FROM', () => {
    const r = originatorAddresses(`"Nancy" <NANCY@Northwind.TEST>, "ceo"@northwind.test, pelé@bücher.test`);
    expect(r.ok && r.addresses.map((a) => [a.valid, a.key, a.ascii])).toEqual([
      [true, N, true],
      [true, C, true],
      [true, 'pelé@xn--bcher-kva.test', false],
    ]);
  });

  it.each([
    ['u@northwind.test%2evictim.test', 'domain'],
    ['u@northwind.test/victim.test', 'domain'],
    ['u@1.2.3.4', 'domain'],
    ['u@[not.an.ip]', 'literal'],
    [`${'l'.repeat(65)}@northwind.test`, 'local_too_long'],
    ['"tab\\\there"@northwind.test', 'control'],
  ])('keeps %s but marks it invalid (%s)', (value, problem) => {
    const r = originatorAddresses(value);
    expect(r.ok && r.addresses.map((a) => [a.valid, a.problem])).toEqual([[false, problem]]);
  });

  it('refuses what parseMailboxList refuses', () => {
    expect(originatorAddresses(`<${N}> <${C}>`)).toEqual({ ok: false, reason: 'two_addresses' });
  });
});

// ---------------------------------------------------------------------------------------------
// Generated lists: a value built from the grammar, with the addresses it must yield.
// ---------------------------------------------------------------------------------------------

const ATEXT = [...'abcxyzABCXYZ0189', ...'!#$%&\'*+-/=?^_`{|}~', 'é', 'ü', '中'];
const QTEXT = [...'abc XYZ09@,;:<>().[]', 'é', '\\"', '\\\\', '\\a', '\\ '];
const CTEXT = [...'abc @,;:<>."[]', '\\)', '\\(', 'é'];

function atom(rand: Rand): string {
  let s = '';
  for (let n = 1 + int(rand, 5); n > 0; n--) s += pick(rand, ATEXT);
  return s;
}
const dotAtom = (rand: Rand): string => Array.from({ length: 1 + int(rand, 2) }, () => atom(rand)).join('.');

function comment(rand: Rand, depth = 0): string {
  let s = '(';
  for (let n = int(rand, 4); n > 0; n--) s += depth < 2 && rand() < 0.2 ? comment(rand, depth + 1) : pick(rand, CTEXT);
  return `${s})`;
}
/** CFWS, sometimes empty; folds with CRLF or the milter's bare LF. */
const cfws = (rand: Rand): string => pick(rand, ['', '', ' ', '\t', ' ', () => ` ${comment(rand)} `, '\r\n ', '\n\t', () => comment(rand)].map((x) => (typeof x === 'string' ? x : x())));
const needsSpace = (rand: Rand): string => pick(rand, [' ', '\t', '\r\n ', () => ` ${comment(rand)} `].map((x) => (typeof x === 'string' ? x : x())));

function quoted(rand: Rand): { written: string; canonical: string } {
  let written = '';
  let content = '';
  for (let n = 1 + int(rand, 5); n > 0; n--) {
    const q = pick(rand, QTEXT);
    written += q;
    content += q.length === 2 ? q[1] : q;
  }
  return { written: `"${written}"`, canonical: `"${content.replace(/["\\]/g, '\\$&')}"` };
}

function addrSpec(rand: Rand): { written: string; address: string } {
  const local = rand() < 0.3 ? quoted(rand) : ((a) => ({ written: a, canonical: a }))(dotAtom(rand));
  const domain = rand() < 0.15 ? `[192.0.2.${int(rand, 255)}]` : `${dotAtom(rand)}.test`;
  return { written: `${cfws(rand)}${local.written}${cfws(rand)}@${cfws(rand)}${domain}${cfws(rand)}`, address: `${local.canonical}@${domain}` };
}

function displayName(rand: Rand): string {
  const words = Array.from({ length: 1 + int(rand, 2) }, () => pick(rand, [atom(rand), quoted(rand).written, '=?utf-8?q?N=C3=A9_ncy?=', `${atom(rand)}.`]));
  return words.join(needsSpace(rand));
}

function mailbox(rand: Rand): { written: string; address: string } {
  const spec = addrSpec(rand);
  if (rand() < 0.4) return spec;
  const name = rand() < 0.8 ? `${displayName(rand)}${cfws(rand)}` : '';
  return { written: `${cfws(rand)}${name}<${spec.written}>${cfws(rand)}`, address: spec.address };
}

function generateList(rand: Rand): { value: string; addresses: string[] } {
  const parts: string[] = [];
  const addresses: string[] = [];
  for (let n = 1 + int(rand, 4); n > 0; n--) {
    if (rand() < 0.2) {
      const members = Array.from({ length: int(rand, 3) }, () => mailbox(rand));
      parts.push(`${cfws(rand)}${displayName(rand)}${cfws(rand)}:${members.map((m) => m.written).join(',')}${cfws(rand)};${cfws(rand)}`);
      addresses.push(...members.map((m) => m.address));
    } else {
      const m = mailbox(rand);
      parts.push(m.written);
      addresses.push(m.address);
    }
  }
  return { value: parts.join(','), addresses };
}

/**
 * The email-addresses reading of a value (after unfolding). Its `address` drops quotes and
 * escapes and keeps some white space around a local part, so both sides are compared without
 * quotes, backslashes and white space.
 */
function oracle(value: string): string[] | null {
  const unfolded = unfoldFieldValue(value);
  if (unfolded === null) return null;
  let r: ReturnType<typeof emailAddresses>;
  try {
    r = emailAddresses({ input: unfolded, rfc6532: true, startAt: 'address-list' });
  } catch {
    return null; // deep nesting overflows its recursive parser
  }
  if (r === null) return null;
  return r.addresses.flatMap((a) => (a.type === 'group' ? a.addresses.map((m) => m.address) : [a.address])).map(bare);
}
const bare = (a: string): string => a.replace(/["\\\s]/g, '');
const plain = (addresses: readonly string[]): string[] => addresses.map(bare);

const same = (a: readonly string[] | null, b: readonly string[]): boolean => a !== null && a.length === b.length && a.every((x, k) => x === b[k]);

describe('parseMailboxList: generated and mutated lists', () => {
  // Checks collect failing inputs and assert once: expect() per iteration costs more than the parser.
  it('yields exactly the addresses a generated list holds, as email-addresses does', () => {
    const failures: unknown[] = [];
    const ran = fuzz({ seed: 5322, count: 6000, budgetMs: 15_000 }, (rand, i) => {
      const { value, addresses } = generateList(rand);
      const r = parseMailboxList(value);
      if (addresses.length === 0) {
        if (r.ok || r.reason !== 'no_address') failures.push({ value, r });
        return;
      }
      if (!r.ok || !same(r.addresses, addresses)) failures.push({ value, r, addresses });
      // email-addresses is slow (super-linear), so it checks every eighth value.
      else if (i % 8 === 0 && !same(oracle(value), plain(addresses))) failures.push({ value, oracle: oracle(value), addresses });
    });
    expect(failures.slice(0, 5)).toEqual([]);
    expect(ran).toBeGreaterThan(0);
  });

  it('is total on mutated and random values; what it accepts, RFC 5322 accepts, and each address re-parses to itself', () => {
    const alphabet = [...'<>@,;:."()[]\\ \t', '\r\n ', '\r\n', '\n', '\r', '\u0000', 'a', 'é', '=?', '\u3000', '\ud800'];
    const failures: unknown[] = [];
    let accepted = 0;
    const ran = fuzz({ seed: 6854, count: 20_000, budgetMs: 20_000 }, (rand) => {
      const value = rand() < 0.1 ? Array.from({ length: int(rand, 60) }, () => pick(rand, alphabet)).join('') : mutate(rand, generateList(rand).value, alphabet);
      const r = parseMailboxList(value);
      if (!r.ok) return;
      accepted++;
      if (r.addresses.length === 0 || r.addresses.length > MAILBOX_LIST_LIMITS.mailboxes) failures.push({ value, r });
      for (const a of r.addresses) {
        const again = parseMailboxList(a);
        if (!again.ok || !same(again.addresses, [a])) failures.push({ value, address: a, again });
        if (mailboxAddress(a).problem === 'multiple_at') failures.push({ value, address: a });
      }
      // Differential check on a sample: the RFC 5322 grammar library must agree.
      if (value.length < 300 && rand() < 0.05 && !same(oracle(value), plain(r.addresses))) failures.push({ value, r, oracle: oracle(value) });
    });
    expect(failures.slice(0, 5)).toEqual([]);
    expect(ran).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(ran / 20); // the mutations still reach the accepting paths
  });
});
