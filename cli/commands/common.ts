import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { Engine } from '../../engine/engine.js';
import { loadConfig } from '../../engine/config/load.js';
import { MtaPolicyError } from '../../engine/errors.js';

/** Load the config and the bundle into an engine; every failure is a coded, one-line error. */
export async function openEngine(opts: { config: string; bundle?: string }): Promise<Engine> {
  const config = await loadConfig(opts.config);
  return Engine.create(opts.bundle === undefined ? { config } : { config, bundle: opts.bundle });
}

/** Read a JSON file (or stdin for `-`); a parse error names the file and position. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    throw new MtaPolicyError('INPUT_UNREADABLE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const message = (e as Error).message;
    const line = jsonErrorLine(text, message);
    throw new MtaPolicyError('INPUT_INVALID_JSON', `${file}${line === null ? '' : `:${line}`}: not valid JSON (${oneLine(message)})`);
  }
}

/**
 * Where JSON.parse gave up. V8 says so in some messages ("line 3 column 5", "position 30");
 * others carry only a context excerpt ("...text around the token..."), which is found in the
 * text; last, the YAML parser (JSON is YAML) may know.
 */
export function jsonErrorLine(text: string, message: string): number | null {
  const lineOf = (offset: number): number => text.slice(0, offset).split('\n').length;
  const lc = /\(line (\d+) column \d+\)/.exec(message);
  if (lc?.[1] !== undefined) return Number(lc[1]);
  const pos = /at position (\d+)/.exec(message);
  if (pos?.[1] !== undefined) return lineOf(Number(pos[1]));
  const excerpt = /"([\s\S]*)" is not valid JSON$/.exec(message)?.[1];
  if (excerpt !== undefined) {
    const cut = excerpt.startsWith('...');
    const core = excerpt.replace(/^\.\.\./, '').replace(/\.\.\.$/, '');
    const at = text.indexOf(core);
    // V8 shows about ten characters either side of the offending token.
    if (at !== -1 && core !== '') return lineOf(at + (cut ? Math.min(10, core.length - 1) : core.length - 1));
  }
  const lines = new LineCounter();
  const offset = parseDocument(text, { lineCounter: lines }).errors[0]?.pos[0];
  return offset === undefined ? null : lines.linePos(offset).line;
}

const oneLine = (s: string): string => {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 117)}...` : flat;
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
