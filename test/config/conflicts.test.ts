import { describe, expect, it } from 'vitest';
import { formatIssue } from '../../engine/errors.js';
import type { ConfigIssue } from '../../engine/errors.js';
import { FILE, issueAt, issuesOf, lineOf, ok, withConnectors } from './helpers.js';

describe('connector selection conflicts', () => {
  const FIX = 'make one range contain the other, split the range, or bind one connector to a specific local IP';
  const pair = (a: string, b: string): string =>
    withConnectors(`  - name: First
    usage: custom
${a}  - name: Second
    usage: custom
${b}`);

  it('equal ranges on the same binding', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0/16]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0-10.1.255.255]\n',
    );
    const i = issueAt(text, 'connectors[1].remote_ip_ranges[0]');
    expect(i.line).toBe(lineOf(text, '10.1.0.0-10.1.255.255'));
    expect(i.message).toContain('`First`');
    expect(i.message).toContain('`Second`');
    expect(i.message).toContain('0.0.0.0:25');
    expect(i.message).toContain(`10.1.0.0/16 (${FILE}:${lineOf(text, '[10.1.0.0/16]')})`);
    expect(i.message).toContain(`10.1.0.0-10.1.255.255 (${FILE}:${lineOf(text, '10.1.0.0-10.1.255.255')})`);
    expect(i.message).toContain('are equal');
    expect(i.fix).toBe(FIX);
  });

  it('partial overlap on the same binding', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0/16]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.128.0-10.2.0.255]\n',
    );
    expect(issueAt(text, 'connectors[1].remote_ip_ranges[0]').message).toContain('partially overlap');
  });

  it('partial overlap found when the later connector starts first', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.128.0-10.2.0.255]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [198.18.0.1, 10.1.0.0/16]\n',
    );
    expect(issueAt(text, 'connectors[1].remote_ip_ranges[1]').message).toContain('partially overlap');
  });

  it('IPv6 ranges conflict on IPv6 bindings', () => {
    const text = pair(
      '    bindings: ["[::]:25"]\n    remote_ip_ranges: ["2001:db8::/32"]\n',
      '    bindings: ["[::]:25"]\n    remote_ip_ranges: ["2001:db8::/32"]\n',
    );
    expect(issueAt(text, 'connectors[1].remote_ip_ranges[0]').message).toContain('[::]:25');
  });

  it('nested ranges, other ports, other families and other local IPs are fine', () => {
    const nested = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.0/8, 198.18.0.0/15]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.2.3, 10.1.0.0/16, 198.18.0.0/15]\n',
    );
    // Second contains 10.1.0.0/16 and 10.1.2.3 (nested in First's /8) but also an equal /15.
    expect(issuesOf(nested).map((i) => i.path)).toEqual(['connectors[1].remote_ip_ranges[2]']);
    expect(
      ok(pair('    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n', '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0/16]\n'))
        .connectors,
    ).toHaveLength(2);
    ok(pair('    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n', '    bindings: ["0.0.0.0:587"]\n    remote_ip_ranges: [10.0.0.0/8]\n'));
    // The same IPv4 range on an IPv4 and on an IPv6 wildcard binding: different sockets.
    ok(pair('    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: ["0.0.0.0/0"]\n', '    bindings: ["[::]:25", "0.0.0.0:2525"]\n    remote_ip_ranges: ["0.0.0.0/0"]\n'));
    ok(pair('    bindings: ["192.0.2.10:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n', '    bindings: ["192.0.2.11:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n'));
  });

  it('specific IP vs wildcard: equal is fine, partial is an error', () => {
    ok(pair('    bindings: ["192.0.2.10:25"]\n    remote_ip_ranges: [0.0.0.0/0]\n', '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [0.0.0.0/0]\n'));
    const text = pair(
      '    bindings: ["192.0.2.10:25"]\n    remote_ip_ranges: [10.0.0.0-10.0.0.200]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.128/25]\n',
    );
    const i = issueAt(text, 'connectors[1].remote_ip_ranges[0]');
    expect(i.message).toContain('192.0.2.10:25');
    expect(i.message).toContain('0.0.0.0:25');
    expect(i.message).toContain('partially overlap');
  });

  it('defaults take part: two internet connectors on one binding', () => {
    const text = withConnectors('  - { name: A, usage: internet, bindings: ["0.0.0.0:25"] }\n  - { name: B, usage: internet, bindings: ["0.0.0.0:25"] }\n');
    const i = issueAt(text, 'connectors[1].usage');
    expect(i.line).toBe(lineOf(text, 'name: B'));
    expect(i.message).toContain('0.0.0.0-255.255.255.255');
  });

  it('disabled connectors are ignored', () => {
    const text = withConnectors(
      '  - { name: A, usage: internet, bindings: ["0.0.0.0:25"] }\n  - { name: B, enabled: false, usage: internet, bindings: ["0.0.0.0:25"] }\n',
    );
    expect(ok(text).connectors[1]?.enabled).toBe(false);
  });

  it('one report per pair of ranges, even across several shared bindings', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25", "192.0.2.10:25"]\n    remote_ip_ranges: [10.0.0.0/16]\n',
      '    bindings: ["0.0.0.0:25", "192.0.2.10:25"]\n    remote_ip_ranges: [10.0.128.0-10.1.0.0]\n',
    );
    expect(issuesOf(text)).toHaveLength(1);
  });

  it('agrees with a brute-force check on random configurations', () => {
    // mulberry32: a small deterministic PRNG.
    const rng = (seed: number) => (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const BINDINGS = ['0.0.0.0:25', '192.0.2.10:25', '192.0.2.11:25', '0.0.0.0:587'];
    let checked = 0;
    let sawTruncation = false;
    for (let seed = 1; seed <= 60; seed++) {
      const rand = rng(seed);
      const pick = (n: number): number => Math.floor(rand() * n);
      interface Gen {
        name: string;
        enabled: boolean;
        bindings: string[];
        ranges: [number, number][];
      }
      const gens: Gen[] = [];
      for (let c = 0; c < (seed % 10 === 0 ? 40 : 10); c++) {
        const bindings = [...new Set([BINDINGS[pick(4)] ?? '', BINDINGS[pick(4)] ?? ''])];
        const ranges: [number, number][] = [];
        for (let r = 0; r < 1 + pick(3); r++) {
          const a = pick(256);
          const b = rand() < 0.3 ? a : Math.min(255, a + pick(80));
          if (!ranges.some(([x, y]) => x === a && y === b)) ranges.push([a, b]);
        }
        gens.push({ name: `C${c}`, enabled: rand() > 0.1, bindings, ranges });
      }
      const text = withConnectors(
        gens
          .map(
            (g) =>
              `  - name: ${g.name}\n    enabled: ${g.enabled}\n    usage: custom\n    bindings: [${g.bindings.map((b) => `"${b}"`).join(', ')}]\n` +
              `    remote_ip_ranges: [${g.ranges.map(([a, b]) => `"10.0.0.${a}-10.0.0.${b}"`).join(', ')}]\n`,
          )
          .join(''),
      );
      // Brute force over every pair of ranges and every pair of bindings.
      const expected = new Set<string>();
      for (let i = 0; i < gens.length; i++) {
        for (let j = i + 1; j < gens.length; j++) {
          const gi = gens[i];
          const gj = gens[j];
          if (gi === undefined || gj === undefined || !gi.enabled || !gj.enabled) continue;
          for (const [a1, b1] of gi.ranges) {
            for (const [a2, b2] of gj.ranges) {
              const equal = a1 === a2 && b1 === b2;
              const intersect = a1 <= b2 && a2 <= b1;
              const nested = (a1 <= a2 && b2 <= b1) || (a2 <= a1 && b1 <= b2);
              const partial = intersect && !nested;
              const conflict = gi.bindings.some((x) =>
                gj.bindings.some((y) => {
                  const [ipx, portx] = x.split(':');
                  const [ipy, porty] = y.split(':');
                  if (portx !== porty) return false;
                  if (ipx === ipy) return equal || partial;
                  if (ipx === '0.0.0.0' || ipy === '0.0.0.0') return partial;
                  return false;
                }),
              );
              if (conflict) expected.add(`${gi.name} 10.0.0.${a1}-10.0.0.${b1} | ${gj.name} 10.0.0.${a2}-10.0.0.${b2}`);
            }
          }
        }
      }
      const reported = new Set<string>();
      let truncated = false;
      let all: readonly ConfigIssue[] = [];
      if (expected.size > 0) all = issuesOf(text);
      else ok(text);
      for (const i of all) {
        const m = /^connectors `(\w+)` .* and `(\w+)` .*remote ranges (\S+) \(.*\) and (\S+) \(/.exec(i.message);
        if (m !== null) reported.add(`${m[1]} ${m[3]} | ${m[2]} ${m[4]}`);
        else if (i.message.startsWith('there are more connector range conflicts')) truncated = true;
        else throw new Error(`unexpected issue: ${formatIssue(i)}`);
      }
      if (truncated) {
        sawTruncation = true;
        expect(reported.size).toBe(100);
        expect(expected.size).toBeGreaterThan(100);
        for (const r of reported) expect(expected).toContain(r);
      } else {
        expect([...reported].sort()).toEqual([...expected].sort());
      }
      checked += expected.size;
    }
    expect(checked).toBeGreaterThan(50);
    expect(sawTruncation).toBe(true);
  });

  it('1,000 connectors: validates quickly and finds the one planted conflict', () => {
    let body = '';
    for (let i = 0; i < 1000; i++) {
      const net = `10.${i >> 8}.${i & 255}`;
      body += `  - name: Relay ${i}
    usage: custom
    bindings: ["0.0.0.0:25", "[::]:25"]
    remote_ip_ranges: ["${net}.0/26", "${net}.64-${net}.100", "2001:db8:${i.toString(16)}::/48"]
    permission_groups: [AnonymousUsers]
`;
    }
    body += `  - name: Planted
    usage: custom
    bindings: ["0.0.0.0:25"]
    remote_ip_ranges: ["10.0.5.101-10.0.6.10"]
`;
    const text = withConnectors(body);
    const started = performance.now();
    const all = issuesOf(text);
    const elapsed = performance.now() - started;
    expect(all).toHaveLength(1);
    const [i] = all;
    expect(i?.path).toBe('connectors[1000].remote_ip_ranges[0]');
    expect(i?.line).toBe(lineOf(text, '10.0.5.101-10.0.6.10'));
    expect(i?.message).toContain('`Relay 6`');
    expect(i?.message).toContain('`Planted`');
    expect(i?.message).toContain('10.0.6.0/26');
    expect(elapsed).toBeLessThan(5000);
  });
});
