import { describe, expect, it } from 'vitest';
import { fieldKey, isFieldName, MAX_FIELD_NAME, unfoldFieldValue } from '../engine/header-fields.js';
import { fuzz, mutate, pick, randomString } from './helpers/fuzz.js';

describe('isFieldName / fieldKey: RFC 5322 §3.6.8 field-name = 1*ftext', () => {
  it.each([
    ['From', 'from'],
    ['X-MS-Exchange-Organization-AuthAs', 'x-ms-exchange-organization-authas'],
    ['Resent-Sender', 'resent-sender'],
    ['!#$%&\'*+-.^_`|~', '!#$%&\'*+-.^_`|~'],
    ['x'.repeat(MAX_FIELD_NAME), 'x'.repeat(MAX_FIELD_NAME)],
  ])('%s is a field name with key %s', (name, key) => {
    expect(isFieldName(name)).toBe(true);
    expect(fieldKey(name)).toBe(key);
  });

  it.each([
    ['From '],
    [' From'],
    ['From:'],
    ['From\t'],
    [' X-MS-Exchange-Organization-AuthAs'],
    ['X-MS-Exchange-Organization-AuthAs\r\n '],
    ['From\r\n'],
    ['Fr om'],
    [''],
    ['Fr\u00f6m'],
    ['\u212arom'], // Kelvin sign: not ASCII, so not a spelling of "krom"
    ['From\u0000'],
    ['From\u007f'],
    ['x'.repeat(MAX_FIELD_NAME + 1)],
  ])('refuses %j', (name) => {
    expect(isFieldName(name)).toBe(false);
    expect(fieldKey(name)).toBeNull();
  });

  it('agrees with the grammar on random and mutated names', () => {
    const alphabet = ['F', 'r', 'o', 'm', 'X', '-', ':', ' ', '\t', '\r', '\n', '\u0000', '~', '!', '\u007f', 'ö', '\u212a', '9'];
    const ftext = /^[\x21-\x39\x3b-\x7e]+$/;
    const ran = fuzz({ seed: 3683, count: 20_000, budgetMs: 10_000 }, (rand) => {
      const name = rand() < 0.5 ? randomString(rand, alphabet, 12) : mutate(rand, pick(rand, ['From', 'Sender', 'X-MS-Exchange-Organization-AuthAs']), alphabet);
      expect(isFieldName(name)).toBe(ftext.test(name));
      const key = fieldKey(name);
      if (key !== null) {
        expect(isFieldName(key)).toBe(true);
        expect(key).not.toMatch(/[A-Z]/);
        expect(key.length).toBe(name.length);
      }
    });
    expect(ran).toBeGreaterThan(0);
  });
});

describe('unfoldFieldValue: RFC 5322 §2.2.3', () => {
  it.each([
    ['Nancy <nancy@northwind.test>', 'Nancy <nancy@northwind.test>'],
    ['a,\r\n b', 'a, b'],
    ['a,\r\n\tb', 'a,\tb'],
    ['a,\n\tb', 'a,\tb'], // milter MTAs fold with a bare LF
    ['a\r\n \r\n b', 'a  b'],
    ['\tvalue', '\tvalue'],
    ['', ''],
  ])('%j → %j', (value, unfolded) => {
    expect(unfoldFieldValue(value)).toBe(unfolded);
  });

  it.each([['a\rb'], ['a\nb'], ['a\r\nb'], ['a\r\n'], ['a\n'], ['a\r'], ['a\n\r b'], ['a\r\r\n b']])('refuses %j: a line break that is no fold', (value) => {
    expect(unfoldFieldValue(value)).toBeNull();
  });

  it('is bounded', () => {
    expect(unfoldFieldValue('a'.repeat(10), 10)).toBe('a'.repeat(10));
    expect(unfoldFieldValue('a'.repeat(11), 10)).toBeNull();
    expect(unfoldFieldValue('a'.repeat(65537))).toBeNull();
  });

  it('is total and idempotent on random values, and leaves no line break', () => {
    const alphabet = ['a', ' ', '\t', '\r', '\n', '\r\n', '\r\n ', '\n\t', ':', 'é'];
    const ran = fuzz({ seed: 2223, count: 20_000, budgetMs: 10_000 }, (rand) => {
      const value = randomString(rand, alphabet, 20);
      const u = unfoldFieldValue(value);
      if (u === null) return;
      expect(u).not.toMatch(/[\r\n]/);
      expect(unfoldFieldValue(u)).toBe(u);
      expect(u.length).toBeLessThanOrEqual(value.length);
    });
    expect(ran).toBeGreaterThan(0);
  });
});
