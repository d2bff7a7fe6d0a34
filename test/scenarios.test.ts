/**
 * Scenario files (cli/scenarios/) are strict: a case must assert something, every value has
 * its type checked (never silently dropped or misread), and the file is read with the bounds
 * of the configuration loader (engine/config/yaml.ts).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/program.js';
import { loadScenarios, parseScenarios } from '../cli/scenarios/parse.js';
import { ConfigError } from '../engine/errors.js';
import { captureIo, fixturePath } from './helpers/engine.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mta-scn-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const SESSION = 'session: { local: 192.0.2.99:25, remote: 198.51.100.7, mail_from: <a@example.test>, rcpt_to: [<u@contoso.test>] }';

/** The issue messages parseScenarios reports; '' when the file is accepted. */
function refusal(text: string): string {
  try {
    parseScenarios(text, 'cases.yaml');
    return '';
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
}

describe('a scenario case must assert something (issue 5 §3b)', () => {
  /*
   * `expect: { rcpt: {} }` is named in issue 5 §3b as passing while asserting nothing; it still
   * does, and so do its relatives: an empty rcpt map under expect.transactions, and an empty
   * list of AUTH expectations for a case without AUTH. `mta-policy test` reports them passed.
   * Expected: each is refused like `expect: {}` ("this case asserts nothing").
   */
  it.each([
    ['expect: { rcpt: {} }', `cases:\n  - name: c\n    ${SESSION}\n    expect: { rcpt: {} }\n`],
    ['expect.transactions: [ { rcpt: {} } ]', `cases:\n  - name: c\n    ${SESSION.replace('mail_from: <a@example.test>, rcpt_to: [<u@contoso.test>]', 'transactions: [ { mail_from: <a@example.test>, rcpt_to: [<u@contoso.test>] } ]')}\n    expect: { transactions: [ { rcpt: {} } ] }\n`],
    ['expect: { auth: [] }', `cases:\n  - name: c\n    ${SESSION}\n    expect: { auth: [] }\n`],
    ['expect: { transactions: [] } without transactions', `cases:\n  - name: c\n    session: { local: 192.0.2.99:25, remote: 198.51.100.7 }\n    expect: { transactions: [] }\n`],
  ])('refuses %s', (_label, text) => {
    expect(refusal(text)).toMatch(/asserts nothing/);
  });

  it('and `mta-policy test` does not count such a case as passed', async () => {
    const file = join(work, 'empty-rcpt.yaml');
    await writeFile(file, `cases:\n  - name: c\n    ${SESSION}\n    expect: { rcpt: {} }\n`);
    const cap = captureIo();
    const code = await main(['test', '-c', fixturePath, file], cap.io);
    expect(cap.out()).not.toContain('1 passed');
    expect(code).not.toBe(0);
  });
});

describe('scenario values are checked, not silently dropped or misread', () => {
  /*
   * `helo: 12345` (a YAML number) is dropped without a word (parse.ts keeps helo only when it is
   * a string) and the session greets with an empty EHLO instead. Expected: "helo must be a string".
   */
  it('refuses a helo that is not a string', () => {
    expect(refusal(`cases:\n  - name: c\n    session: { local: 192.0.2.99:2525, remote: 198.51.100.7, helo: 12345 }\n    expect: { ehlo: { decision: reject } }\n`)).toMatch(/helo/);
  });

  /*
   * rcpt_to is checked to be a list only at the session level; inside `transactions` a string
   * is accepted, and the runner then iterates its characters, deciding "<", "u", "@", … as 16
   * recipients. Expected: "rcpt_to must be a list of addresses" there too.
   */
  it.each([
    ['remote: 12', 'remote: 12', /remote must be a string/],
    ['mail_from: 5', 'mail_from: 5, rcpt_to: [<u@contoso.test>]', /mail_from must be a string/],
    ['header_size: -1', 'mail_from: <a@example.test>, rcpt_to: [<u@contoso.test>], header_size: -1', /header_size must be a byte count/],
    ['headers: text', 'mail_from: <a@example.test>, rcpt_to: [<u@contoso.test>], headers: text', /headers must be a mapping or a list/],
  ])('refuses %s', (_label, keys, message) => {
    const session = keys.startsWith('remote') ? `{ local: 192.0.2.99:25, ${keys} }` : `{ local: 192.0.2.99:25, remote: 198.51.100.7, ${keys} }`;
    expect(refusal(`cases:\n  - name: c\n    session: ${session}\n    expect: { connect: { decision: continue } }\n`)).toMatch(message);
  });

  it('refuses a transaction rcpt_to that is not a list', () => {
    const text = `cases:\n  - name: c\n    session:\n      local: 192.0.2.99:25\n      remote: 198.51.100.7\n      transactions: [ { mail_from: <a@example.test>, rcpt_to: "<u@contoso.test>" } ]\n    expect: { transactions: [ { mail: { decision: continue } } ] }\n`;
    expect(refusal(text)).toMatch(/rcpt_to must be a list/);
    expect(refusal(text.replace('rcpt_to: "<u@contoso.test>"', 'rcpt_to: [<u@contoso.test>], rset: yes please'))).toMatch(/rset must be true or false/);
    expect(refusal(text.replace('rcpt_to: "<u@contoso.test>"', 'rcpt_to: [<u@contoso.test>]'))).toBe('');
  });
});

describe('scenario files are read with the same bounds as the configuration', () => {
  /*
   * loadScenarios uses fs.readFile: a FIFO blocks `mta-policy test` forever (the configuration
   * loader opens with O_NONBLOCK and refuses non-regular files, issue 5 §3b).
   * Expected: a ConfigError "it is a FIFO, not a regular file", at once.
   */
  it('refuses a FIFO instead of hanging', async () => {
    const fifo = join(work, 'cases.fifo');
    execFileSync('mkfifo', [fifo]);
    const outcome = await Promise.race([
      loadScenarios(fifo).then(
        () => 'loaded',
        (e: unknown) => e,
      ),
      new Promise((resolve) => setTimeout(() => resolve('hung'), 3000)),
    ]);
    // Release a reader that is still blocked in open(2), so nothing is left hanging.
    if (outcome === 'hung') closeSync(openSync(fifo, 'w'));
    expect(outcome).toBeInstanceOf(ConfigError);
    expect(String((outcome as Error).message)).toContain('FIFO');
  });

  /*
   * Deep nesting reaches the yaml library's recursion and the error line is
   * "Maximum call stack size exceeded" (issue 5 §3b: "deep nesting reports a stack overflow").
   * Expected: the configuration loader's "nested too deeply (more than 64 levels …)".
   */
  it('reports deep nesting clearly, not as a stack overflow', () => {
    const text = `cases:\n  - name: deep\n    session: { local: 192.0.2.99:25, remote: 198.51.100.7, counters: ${'['.repeat(20_000)}${']'.repeat(20_000)} }\n    expect: { connect: { decision: continue } }\n`;
    const message = refusal(text);
    expect(message).not.toMatch(/call stack/i);
    expect(message).toMatch(/nested too deeply/);
  });
});
