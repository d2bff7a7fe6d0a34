import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/program.js';
import { captureIo, fixturePath, root } from './helpers/engine.js';

const example = join(root, 'examples', 'northwind.yaml');
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mta-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const cap = captureIo();
  const code = await main(argv, cap.io);
  return { code, out: cap.out(), err: cap.err() };
}

async function file(name: string, text: string): Promise<string> {
  const path = join(work, name);
  await writeFile(path, text);
  return path;
}

/** Errors are single lines prefixed `mta-policy:`, never a stack trace. */
function expectCleanError(err: string): void {
  expect(err).toMatch(/^mta-policy: /);
  expect(err).not.toMatch(/\n\s+at /);
}

describe('mta-policy check', () => {
  it('validates the shipped example', async () => {
    const r = await cli('check', '--config', example);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^ok: .*northwind\.yaml: 5 connectors enabled \(6 defined\), 4 accepted domains, 5 users; policy bundle built with opa v\d/);
  });

  it('reports every config error with file, line and key, exit 1', async () => {
    const bad = await file(
      'bad.yaml',
      'server: { fqdn: mx.test }\nconnectors:\n  - name: A\n    usage: internet\n    bindings: ["0.0.0.0:99999"]\n    remote_ip_rangs: []\n',
    );
    const r = await cli('check', '--config', bad);
    expect(r.code).toBe(1);
    const lines = r.err.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expectCleanError(line);
    expect(r.err).toMatch(/bad\.yaml:5:\d+: connectors\[0\]\.bindings\[0\]: .*port/);
    expect(r.err).toMatch(/bad\.yaml:6:\d+: connectors\[0\]\.remote_ip_rangs: .*remote_ip_ranges/);
  });

  it('names a missing config file', async () => {
    const r = await cli('check', '--config', join(work, 'nope.yaml'));
    expect(r.code).toBe(1);
    expectCleanError(r.err);
    expect(r.err).toContain('nope.yaml');
  });

  it('names a missing bundle', async () => {
    const r = await cli('check', '--config', example, '--bundle', join(work, 'no-bundle'));
    expect(r.code).toBe(1);
    expectCleanError(r.err);
    expect(r.err).toContain('no policy bundle');
  });

  it('exits 2 on usage errors, each one line starting mta-policy:', async () => {
    const usage = [['check'], ['frobnicate'], ['eval', '--config', example, '--stage', 'data', '--input', 'x.json'], ['help', 'bogus'], ['check', '--config']];
    for (const argv of usage) {
      const r = await cli(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(/^mta-policy: .* \(run mta-policy --help for usage\)\n$/);
      expect(r.err.trimEnd().split('\n'), argv.join(' ')).toHaveLength(1);
    }
    expect((await cli('eval', '--config', example, '--stage', 'bogus', '--input', 'x.json')).err).toContain("argument 'bogus' is invalid");
    // Nothing at all: the usage, and exit 2.
    const none = await cli();
    expect(none.code).toBe(2);
    expect(none.err).toContain('Usage: mta-policy');
  });

  it('prints help with exit 0', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('check');
    expect(r.out).toContain('eval');
  });
});

describe('mta-policy eval', () => {
  it('prints the decision as JSON', async () => {
    const facts = await file('relay.json', JSON.stringify({ local: '192.0.2.10:25', remote: '198.51.100.7', mail_from: '<a@example.test>', rcpt_to: '<x@victim.test>' }));
    const r = await cli('eval', '--config', example, '--stage', 'rcpt', '--input', facts);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out) as Record<string, unknown>;
    expect(d).toMatchObject({
      stage: 'rcpt',
      decision: 'reject',
      reason: 'relay_denied',
      reply: { code: 550, enhanced: '5.7.54', text: 'SMTP; Unable to relay recipient in non-accepted domain' },
      connector: 'Default Frontend SMTP01',
      principals: ['anonymous'],
      recipient: { address: 'x@victim.test', domain: 'victim.test', accepted_domain_type: null, routed: false },
    });
    expect(d['rights']).toContain('ms-Exch-SMTP-Submit');
  });

  it('explains a decision in words', async () => {
    const facts = await file('scanner.json', JSON.stringify({ local: '192.0.2.10:25', remote: '10.20.30.40', mail_from: '<s@northwind.test>', rcpt_to: '<x@victim.test>' }));
    const r = await cli('eval', '-c', example, '-s', 'rcpt', '-i', facts, '--explain');
    expect(r.code).toBe(0);
    expect(r.out).toContain('decision:   continue — 250 2.1.5 Recipient OK');
    expect(r.out).toContain('connector:  Scanner Relay (binding 0.0.0.0:25, remote range 10.20.30.40)');
    expect(r.out).toContain('principals: anonymous');
    expect(r.out).toContain('ms-Exch-SMTP-Accept-Any-Recipient');
    expect(r.out).toMatch(/rule:\s+ok_rcpt: /);
  });

  it('explains which check refused', async () => {
    const facts = await file('anon587.json', JSON.stringify({ local: '192.0.2.10:587', remote: '198.51.100.7', tls: {}, mail_from: '<nancy@northwind.test>' }));
    const r = await cli('eval', '-c', example, '-s', 'mail', '-i', facts, '--explain');
    expect(r.out).toContain('rule:       submit_denied_anonymous: the anonymous session lacks ms-Exch-SMTP-Submit on this connector');
    expect(r.out).toContain('rights:     (none)');
  });

  it('reports malformed facts JSON with file and line', async () => {
    const facts = await file('broken.json', '{\n  "local": "192.0.2.10:25",\n  "remote": \n}\n');
    const r = await cli('eval', '-c', example, '-s', 'connect', '-i', facts);
    expect(r.code).toBe(1);
    expectCleanError(r.err);
    expect(r.err).toMatch(/broken\.json:4: not valid JSON \(Unexpected token/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('reports facts that are not facts', async () => {
    const facts = await file('array.json', '[1, 2]');
    const r = await cli('eval', '-c', example, '-s', 'connect', '-i', facts);
    expect(r.code).toBe(1);
    expect(r.err).toContain('facts must be a JSON object');
    const bad = await file('badip.json', JSON.stringify({ local: 'mx:25', remote: '1.2.3.4' }));
    const r2 = await cli('eval', '-c', example, '-s', 'connect', '-i', bad);
    expect(r2.code).toBe(1);
    expectCleanError(r2.err);
    expect(r2.err).toContain('local: "mx:25" is not an IP address');
  });

  it('names an unreadable facts file', async () => {
    const r = await cli('eval', '-c', example, '-s', 'connect', '-i', join(work, 'missing.json'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mta-policy: cannot read .*missing\.json: ENOENT/);
  });
});

describe('mta-policy test', () => {
  it('runs the shipped scenarios', async () => {
    const r = await cli('test', '--config', example, ...['relay', 'submission', 'partners'].map((f) => join(root, 'examples', 'scenarios', `${f}.yaml`)));
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^(\d+) passed, 0 failed\n$/);
    expect(r.code).toBe(0);
  });

  it('prints one line per failing case with the difference, and exits 1', async () => {
    const cases = await file(
      'failing.yaml',
      `cases:
  - name: wrong connector and wrong rcpt expectation
    session: { local: 192.0.2.10:25, remote: 198.51.100.7, mail_from: <a@example.test>, rcpt_to: [<x@victim.test>] }
    expect:
      connector: Scanner Relay
      rcpt:
        <x@victim.test>: { decision: continue }
  - name: passes
    session: { local: 192.0.2.10:25, remote: 198.51.100.7 }
    expect: { connect: { decision: continue, code: 220 } }
  - name: expects a stage the session never reaches
    session: { local: 192.0.2.10:26, remote: 198.51.100.7, mail_from: <a@example.test> }
    expect: { mail: { decision: continue } }
`,
    );
    const r = await cli('test', '-c', example, cases);
    expect(r.code).toBe(1);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(
      `FAIL ${cases}:2 "wrong connector and wrong rcpt expectation": connector: expected "Scanner Relay", got "Default Frontend SMTP01"; rcpt <x@victim.test>: expected continue, got reject 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain (reason relay_denied)`,
    );
    expect(lines[1]).toBe(`FAIL ${cases}:11 "expects a stage the session never reaches": mail: expected continue, but the session never reached it`);
    expect(lines[2]).toBe('1 passed, 2 failed');
  });

  it('reports scenario file errors with line and key', async () => {
    const cases = await file(
      'bad-cases.yaml',
      `cases:
  - name: typo
    session: { local: 192.0.2.10:25, remote: 198.51.100.7, rcpt_too: [<a@b.test>] }
    expect:
      mail: { decison: reject }
      rcpt:
        <other@b.test>: { decision: maybe }
`,
    );
    const r = await cli('test', '-c', example, cases);
    expect(r.code).toBe(1);
    for (const line of r.err.trim().split('\n')) expectCleanError(line);
    expect(r.err).toMatch(/bad-cases\.yaml:3:\d+: cases\[0\]\.session\.rcpt_too: unknown key "rcpt_too"/);
    expect(r.err).toMatch(/bad-cases\.yaml:5:\d+: cases\[0\]\.expect\.mail\.decison: unknown key "decison"/);
    expect(r.err).toMatch(/bad-cases\.yaml:7:\d+: cases\[0\]\.expect\.rcpt\.<other@b\.test>: "<other@b\.test>" is not in session\.rcpt_to/);
    expect(r.err).toMatch(/bad-cases\.yaml:7:\d+: .*unknown decision "maybe"/);
  });

  it('reports YAML syntax errors with line', async () => {
    const cases = await file('syntax.yaml', 'cases:\n  - name: x\n    session: { local: [\n');
    const r = await cli('test', '-c', example, cases);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mta-policy: .*syntax\.yaml:\d+:\d+: /);
  });

  it('runs against the policy test fixture config too', async () => {
    const cases = await file(
      'fixture.yaml',
      'cases:\n  - name: scanner\n    session: { local: 192.0.2.99:25, remote: 198.18.7.15 }\n    expect: { connector: Scanner }\n',
    );
    const r = await cli('test', '-c', fixturePath, cases);
    expect(r.out).toBe('1 passed, 0 failed\n');
  });
});
