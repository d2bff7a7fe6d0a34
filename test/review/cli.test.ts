/**
 * Review findings on the CLI's exit codes and error lines (issue 5 §3b "Smaller ones", README
 * "The CLI").
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/program.js';
import { captureIo, fixturePath } from '../helpers/engine.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const cap = captureIo();
  const code = await main(argv, cap.io);
  return { code, out: cap.out(), err: cap.err() };
}

describe('usage errors', () => {
  /*
   * Issue 5 §3b: "`mta-policy` with no arguments and `help bogus` exit 0 (usage errors exit 2)".
   * Both still exit 0 (commander prints the help to stderr and the exit is swallowed).
   * Expected: exit 2.
   */
  it('exits 2 with no arguments', async () => {
    expect((await cli()).code).toBe(2);
  });

  it('exits 2 for help on an unknown command', async () => {
    expect((await cli('help', 'bogus')).code).toBe(2);
  });

  /*
   * README: "Errors are one line on stderr starting `mta-policy:` — never a stack trace — with
   * exit code 1 (2 for usage errors)". Usage errors come from commander unchanged: two lines,
   * starting "error:". Expected: one line starting "mta-policy: ".
   */
  it('writes a usage error as one line starting mta-policy:', async () => {
    const r = await cli('eval', '--config', fixturePath, '--stage', 'bogus', '--input', 'x.json');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^mta-policy: /);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });
});
