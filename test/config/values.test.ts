import { describe, expect, it } from 'vitest';
import { MtaPolicyError } from '../../engine/errors.js';
import { RIGHTS } from '../../engine/config/types.js';
import { ADDRESS_BITS, canonicalIp, formatRange, ipToBigInt, isParseFailure, mergeRanges, parseBinding, parseHostPort, parseIp, parseIpRange, uncoveredCount } from '../../engine/ip.js';
import type { ParsedRange } from '../../engine/ip.js';
import { formatByteSize, parseByteSize } from '../../engine/config/units.js';
import { CONFIG_SCHEMA, RIGHT_PATTERN } from '../../engine/config/schema.js';
import { failure, range } from './helpers.js';

describe('ip helpers', () => {
  it('parses and canonicalises addresses', () => {
    expect(canonicalIp('192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('::FFFF:c000:0201')).toBe('192.0.2.1');
    expect(canonicalIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIp('010.0.0.1')).toBeNull();
    expect(canonicalIp('127.1')).toBeNull();
    expect(canonicalIp('fe80::1%eth0')).toBeNull();
    expect(canonicalIp('example.com')).toBeNull();
    expect(parseIp('::ffff:192.0.2.1')?.family).toBe(4);
    expect(ipToBigInt('192.0.2.1')).toEqual({ family: 4, value: 0xc0000201n });
    expect(ipToBigInt('::1')).toEqual({ family: 6, value: 1n });
    expect(() => ipToBigInt('nope')).toThrow(MtaPolicyError);
  });

  it('parses ranges', () => {
    expect(range('192.0.2.7')).toEqual({ family: 4, first: 0xc0000207n, last: 0xc0000207n });
    expect(range('192.168.1.0/24')).toEqual({ family: 4, first: 0xc0a80100n, last: 0xc0a801ffn });
    expect(range('0.0.0.0/0')).toEqual({ family: 4, first: 0n, last: 0xffffffffn });
    expect(range('198.18.7.1-198.18.7.30')).toEqual({ family: 4, first: 0xc6120701n, last: 0xc612071en });
    expect(range('::ffff:192.168.1.0/120')).toEqual({ family: 4, first: 0xc0a80100n, last: 0xc0a801ffn });
    const v6 = range('2001:db8:77::/48');
    expect(v6.family).toBe(6);
    expect(formatRange(v6)).toBe('2001:db8:77::-2001:db8:77:ffff:ffff:ffff:ffff:ffff');
  });

  it('refuses bad ranges with a fix', () => {
    const hostBits = failure(parseIpRange('192.168.1.5/24'));
    expect(hostBits.error).toContain('host bits');
    expect(hostBits.fix).toContain('did you mean 192.168.1.0/24');
    expect(failure(parseIpRange('2001:db8::1/32')).fix).toContain('did you mean 2001:db8::/32');
    expect(failure(parseIpRange('10.0.0.0/33')).error).toContain('too long');
    expect(failure(parseIpRange('10.0.0.9-10.0.0.1')).fix).toContain('10.0.0.1-10.0.0.9');
    expect(failure(parseIpRange('10.0.0.1-::1')).error).toContain('mixes');
    expect(failure(parseIpRange('10.0.0.300')).error).toContain('not an IP address');
  });

  it('parses bindings', () => {
    expect(parseBinding('0.0.0.0:25')).toEqual({ ip: null, family: 4, port: 25, text: '0.0.0.0:25' });
    expect(parseBinding('[::]:587')).toEqual({ ip: null, family: 6, port: 587, text: '[::]:587' });
    expect(parseBinding(' 192.0.2.10:25 ')).toEqual({ ip: '192.0.2.10', family: 4, port: 25, text: '192.0.2.10:25' });
    expect(parseBinding('[2001:DB8:0::1]:25')).toEqual({ ip: '2001:db8::1', family: 6, port: 25, text: '[2001:db8::1]:25' });
    expect(parseBinding('[::ffff:192.0.2.10]:25')).toMatchObject({ ip: '192.0.2.10', family: 4, text: '192.0.2.10:25' });
    expect(failure(parseBinding('192.0.2.10')).fix).toContain('192.0.2.10:25');
    expect(failure(parseBinding('2001:db8::1:25')).fix).toContain('[2001:db8::1]:25');
    expect(failure(parseBinding('0.0.0.0:0')).error).toContain('not a port');
    expect(failure(parseBinding('0.0.0.0:65536')).error).toContain('not a port');
    expect(failure(parseBinding('[192.0.2.1]:25')).error).toContain('IPv6');
    expect(failure(parseBinding('*:25')).fix).toContain('0.0.0.0:25');
  });
});

describe('byte sizes', () => {
  it('uses binary multiples like Exchange', () => {
    const bytes = (v: unknown): number | null => {
      const r = parseByteSize(v);
      if (isParseFailure(r)) throw new Error(r.error);
      return r.bytes;
    };
    expect(bytes('36MB')).toBe(37748736);
    expect(bytes('36 MB')).toBe(37748736);
    expect(bytes('36mib')).toBe(37748736);
    expect(bytes('256KB')).toBe(262144);
    expect(bytes('2GB')).toBe(2147483648);
    expect(bytes('10B')).toBe(10);
    expect(bytes('1.5MB')).toBe(1572864);
    expect(bytes(4096)).toBe(4096);
    expect(bytes('UNLIMITED')).toBeNull();
    expect(isParseFailure(parseByteSize('36XB'))).toBe(true);
    expect(isParseFailure(parseByteSize('0.1KB'))).toBe(true);
    expect(isParseFailure(parseByteSize(-1))).toBe(true);
    expect(formatByteSize(37748736)).toBe('36MB');
    expect(formatByteSize(1000)).toBe('1000B');
  });
});

describe('schema', () => {
  it('matches every right case-insensitively and nothing else', () => {
    const re = new RegExp(RIGHT_PATTERN, 'u');
    for (const r of RIGHTS) {
      expect(re.test(r)).toBe(true);
      expect(re.test(r.toUpperCase())).toBe(true);
      expect(re.test(r.toLowerCase())).toBe(true);
    }
    expect(re.test('ms-Exch-SMTP-Submit-X')).toBe(false);
    expect(re.test(' ms-Exch-SMTP-Submit')).toBe(false);
    expect(re.test('msXExch-SMTP-Submit')).toBe(false);
  });

  it('is closed and described', () => {
    const missing: string[] = [];
    const visit = (node: unknown, where: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${where}[${i}]`));
      if (typeof node !== 'object' || node === null) return;
      const rec = node as Record<string, unknown>;
      if (rec['type'] === 'object' && rec['additionalProperties'] !== false && rec['if'] === undefined && !where.includes('/if') && !where.includes('/then')) {
        missing.push(`${where}: additionalProperties`);
      }
      const props = rec['properties'];
      if (typeof props === 'object' && props !== null && !where.endsWith('/if') && !where.endsWith('/then')) {
        for (const [k, v] of Object.entries(props)) {
          if (typeof v !== 'object' || v === null || !('description' in v)) missing.push(`${where}.${k}: description`);
        }
      }
      for (const [k, v] of Object.entries(rec)) visit(v, `${where}/${k}`);
    };
    visit(CONFIG_SCHEMA, '#');
    expect(missing).toEqual([]);
  });
});

describe('IPv4-compatible and IPv4-mapped IPv6', () => {
  it('only ::ffff:0:0/96 is IPv4-mapped; ::a.b.c.d is an IPv6 address (RFC 4291 §2.5.5)', () => {
    expect(parseIp('::10.0.0.1')).toEqual({ family: 6, value: 0x0a000001n, text: '::a00:1' });
    expect(parseIp('::ffff:10.0.0.1')).toEqual({ family: 4, value: 0x0a000001n, text: '10.0.0.1' });
    expect(range('::10.0.0.0/104')).toEqual({ family: 6, first: 0x0a000000n, last: 0x0affffffn });
    expect(range('::ffff:10.0.0.0/104')).toEqual({ family: 4, first: 0x0a000000n, last: 0x0affffffn });
    expect(parseBinding('[::192.0.2.10]:25')).toMatchObject({ ip: '::c000:20a', family: 6 });
    expect(parseIp('1::10.0.0.1')?.text).toBe('1::a00:1');
    expect(parseIp('::ffff:010.0.0.1')).toBeNull();
  });
});

describe('parseHostPort: the one ip:port parser', () => {
  it('parses and canonicalises', () => {
    expect(parseHostPort('192.0.2.10:25')).toEqual({ family: 4, value: 0xc000020an, text: '192.0.2.10', port: 25 });
    expect(parseHostPort(' [2001:DB8::1]:587 ')).toEqual({ family: 6, value: 0x20010db8000000000000000000000001n, text: '2001:db8::1', port: 587 });
    expect(parseHostPort('[::ffff:192.0.2.10]:25')).toMatchObject({ family: 4, text: '192.0.2.10', port: 25 });
    expect(parseHostPort('0.0.0.0:25')).toMatchObject({ text: '0.0.0.0', value: 0n });
  });

  it('a port is required unless portOptional', () => {
    expect(failure(parseHostPort('192.0.2.10')).error).toContain('has no port');
    expect(failure(parseHostPort('[2001:db8::1]')).error).toContain('has no port');
    expect(parseHostPort('192.0.2.10', { portOptional: true })).toMatchObject({ text: '192.0.2.10', port: null });
    expect(parseHostPort('2001:db8::1', { portOptional: true })).toMatchObject({ text: '2001:db8::1', port: null });
    expect(parseHostPort('[2001:db8::1]', { portOptional: true })).toMatchObject({ text: '2001:db8::1', port: null });
    expect(parseHostPort('192.0.2.10:25', { portOptional: true })).toMatchObject({ port: 25 });
  });

  it('refuses bad forms with a fix', () => {
    expect(failure(parseHostPort('2001:db8::1:25')).fix).toBe('write [2001:db8::1]:25');
    expect(failure(parseHostPort('[192.0.2.1]:25')).error).toContain('IPv6 addresses only');
    expect(failure(parseHostPort('192.0.2.1:0')).error).toContain('not a port');
    expect(failure(parseHostPort('192.0.2.1:65536')).error).toContain('not a port');
    expect(failure(parseHostPort('192.0.2.1:025')).error).toContain('not a port');
    expect(failure(parseHostPort('example.com:25')).error).toContain('not an IP address');
    expect(failure(parseHostPort('[::1:25')).error).toContain('no closing');
    expect(failure(parseHostPort('fe80::1%eth0', { portOptional: true })).error).toContain('not an IP address');
    expect(failure(parseHostPort('fe80::1%eth0:25')).error).toContain('not an IP address');
  });
});

describe('range unions', () => {
  it('merges touching and overlapping ranges per family, and counts what they leave out', () => {
    const r = (text: string): ParsedRange => range(text);
    expect(mergeRanges([r('10.0.0.128/25'), r('::/0'), r('10.0.0.0/25'), r('10.0.1.5')])).toEqual([
      { family: 4, first: 0x0a000000n, last: 0x0a0000ffn },
      { family: 4, first: 0x0a000105n, last: 0x0a000105n },
      { family: 6, first: 0n, last: (1n << 128n) - 1n },
    ]);
    expect(uncoveredCount([r('0.0.0.0/1'), r('128.0.0.0/1')], [r('0.0.0.0/0')])).toBe(0n);
    expect(uncoveredCount([r('10.0.0.0/9')], [r('10.0.0.0/8'), r('::/0')])).toBe((1n << 23n) + (1n << 128n));
    expect(ADDRESS_BITS).toEqual({ 4: 32, 6: 128 });
  });
});
