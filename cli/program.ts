import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, MtaPolicyError, formatIssue } from '../engine/errors.js';
import { STAGES } from '../engine/types.js';
import { buildCommand } from './commands/build.js';
import { checkCommand } from './commands/check.js';
import { evalCommand } from './commands/eval.js';
import { milterCheckCommand } from './commands/milter-check.js';
import { testCommand } from './commands/test.js';

/** Where the CLI writes; injectable so tests run commands in-process. */
export interface Io {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** Exit codes: 0 ok, 1 failure (bad config, failing scenarios, build error), 2 usage error. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

interface State {
  code: number;
}

function createProgram(io: Io, state: State): Command {
  const program = new Command('mta-policy')
    .description('Exchange-style receive-connector permissions as policy-as-code (Rego → WASM)')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // A usage error is one line like every other error (commander's may span several).
      outputError: (s, write) => write(`${usageLine(s.replace(/^error:\s*/, ''))}\n`),
    });

  const bundleOption = new Option('--bundle <dir>', 'policy bundle directory (default: the shipped policies/dist)');

  program
    .command('check')
    .description('validate a configuration file and the policy bundle')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .addOption(bundleOption)
    .action(async (opts: { config: string; bundle?: string }) => {
      state.code = await checkCommand(opts, io);
    });

  program
    .command('eval')
    .description('evaluate one stage for the facts in a JSON file and print the decision')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .addOption(new Option('-s, --stage <stage>', 'SMTP stage').choices(STAGES).makeOptionMandatory())
    .requiredOption('-i, --input <file>', 'facts JSON file (- for standard input)')
    .option('--explain', 'explain the decision in words instead of printing JSON')
    .addOption(bundleOption)
    .action(async (opts: { config: string; stage: (typeof STAGES)[number]; input: string; explain?: boolean; bundle?: string }) => {
      state.code = await evalCommand(opts, io);
    });

  program
    .command('test')
    .description('run scenario files against the policy; prints failures and "N passed, N failed"')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .argument('<cases...>', 'scenario files (YAML)')
    .addOption(bundleOption)
    .action(async (cases: string[], opts: { config: string; bundle?: string }) => {
      state.code = await testCommand({ ...opts, cases }, io);
    });

  program
    .command('milter-check')
    .description("act as an MTA against a running milter for the SMTP conversation an eval facts file describes; prints each stage's reply")
    .requiredOption('--connect <address>', 'the milter: inet:PORT@HOST, inet6:PORT@HOST or unix:/path')
    .requiredOption('-f, --facts <file>', 'facts JSON file, as for eval (- for standard input)')
    .option('--timeout <ms>', 'wait for each reply (ms)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive number of milliseconds');
      return n;
    }, 10_000)
    .action(async (opts: { connect: string; facts: string; timeout: number }) => {
      state.code = await milterCheckCommand(opts, io);
    });

  program
    .command('build')
    .description('compile the shipped policy plus extra Rego into a bundle with opa')
    .option('-p, --policy <dir...>', 'extra Rego directories (package mta.ext rules)')
    .option('-o, --out <dir>', 'output directory', 'policies/dist')
    .option('--check', 'rebuild the shipped bundle and fail when the committed one is stale')
    .action(async (opts: { policy?: string[]; out: string; check?: boolean }) => {
      state.code = await buildCommand(opts, io);
    });

  return program;
}

const usageLine = (message: string): string => `mta-policy: ${message.trim().replace(/\s*\n\s*/g, ' ')} (run mta-policy --help for usage)`;

/** Run the CLI; returns the exit code. Errors become one clear line on stderr, never a stack. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const state: State = { code: EXIT.ok };
  const program = createProgram(io, state);
  // Nothing to do, or help for a command that does not exist, is a usage error (exit 2).
  if (argv.length === 0) {
    io.stderr.write(program.helpInformation());
    return EXIT.usage;
  }
  const helpFor = argv[0] === 'help' ? argv[1] : undefined;
  if (helpFor !== undefined && !program.commands.some((c) => c.name() === helpFor)) {
    io.stderr.write(`${usageLine(`unknown command '${helpFor.slice(0, 40)}'`)}\n`);
    return EXIT.usage;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return state.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      if (e.code === 'commander.executeSubCommandAsync') return EXIT.failure;
      return EXIT.usage;
    }
    if (e instanceof ConfigError) {
      for (const issue of e.issues) io.stderr.write(`mta-policy: ${formatIssue(issue)}\n`);
      return EXIT.failure;
    }
    if (e instanceof MtaPolicyError) {
      io.stderr.write(`mta-policy: ${e.message}\n`);
      return EXIT.failure;
    }
    io.stderr.write(`mta-policy: unexpected error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.failure;
  }
}
