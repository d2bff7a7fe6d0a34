/**
 * The README's main job cannot rot: examples/live.ts (what scripts/example.sh runs after
 * `npm run example`) is run here as a child, on a copy of examples/northwind-submission.yaml
 * whose only change is free loopback ports, so the certificate is made by openssl on this
 * "first run" and the Maildir lies in the test's directory. A copy that lets nancy send as
 * andrew must make the driver fail: its checks are not vacuous.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { root } from './helpers/engine.js';
import { freePorts } from './peers/harness.js';

const DRIVER = join(root, 'dist', 'examples', 'live.js');
const EXAMPLE = join(root, 'examples', 'northwind-submission.yaml');
/** The example's bindings, as committed. */
const PORTS = ['127.0.0.1:2587', '127.0.0.1:2525'] as const;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The example in `<tmp>/examples/`, on free ports; `edit` changes the text further. */
async function copyExample(edit: (t: string) => string = (t) => t): Promise<{ dir: string; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mta-policy-example-'));
  dirs.push(dir);
  let text = readFileSync(EXAMPLE, 'utf8');
  const free = await freePorts(PORTS.length);
  PORTS.forEach((p, i) => {
    expect(text).toContain(`"${p}"`);
    text = text.replace(`"${p}"`, `"127.0.0.1:${String(free[i])}"`);
  });
  mkdirSync(join(dir, 'examples'));
  const file = join(dir, 'examples', 'northwind-submission.yaml');
  writeFileSync(file, edit(text));
  return { dir, file };
}

function runDriver(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(DRIVER)) throw new Error(`${DRIVER} is missing: run npm run build first`);
  return new Promise((resolve) => {
    execFile(process.execPath, [DRIVER, '--config', file], { timeout: 60_000 }, (e, stdout, stderr) => resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 1, stdout, stderr }));
  });
}

describe('the main job (scripts/example.sh, live part)', () => {
  it('serves the example, delivers the allowed message, refuses relay and send-as, stops on SIGTERM', async () => {
    const { dir, file } = await copyExample();
    const r = await runDriver(file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`made a self-signed certificate: ${join(dir, 'var', 'certs', 'server.pem')}`);
    expect(r.stdout).toMatch(/^ {2}listening {2}submission 127\.0\.0\.1:\d+ {2}\(Client Frontend SMTP01\)$/m);
    expect(r.stdout).toMatch(/^ {2}-> 250 2\.6\.0 /m);
    expect(r.stdout).toContain('  -> RCPT TO: 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');
    expect(r.stdout).toContain('  -> DATA: 550 5.7.1 Client does not have permissions to send as this sender');
    expect(r.stdout).toContain('  policy: connect ok_connect, ehlo ok_ehlo, mail ok_mail, rcpt relay_denied (reject)\n');
    expect(r.stdout).toMatch(/stopped mta-policy serve \(pid \d+, SIGTERM\): exit 0/);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('all 5 expectations held');
    const delivered = readdirSync(join(dir, 'var', 'maildir', 'new'));
    expect(delivered).toHaveLength(1);
    expect(r.stdout).toContain(`delivered: ${join(dir, 'var', 'maildir', 'new', delivered[0] as string)}`);
  });

  it('exits 1 and says which expectation failed when the configuration lets the send-as through', async () => {
    const { file } = await copyExample((t) => t.replace('send_as: [ops@northwind.test]', 'send_as: [ops@northwind.test, andrew@northwind.test]'));
    const r = await runDriver(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('NOT AS EXPECTED (wanted 550 at DATA, reason send_as_denied)');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('1 of 5 expectations FAILED');
  });
});
