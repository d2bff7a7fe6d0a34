import { readFile } from 'node:fs/promises';
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
    const m = /position (\d+)/.exec((e as Error).message);
    const where = m?.[1] === undefined ? '' : `:${lineOf(text, Number(m[1]))}`;
    throw new MtaPolicyError('INPUT_INVALID_JSON', `${file}${where}: not valid JSON (${(e as Error).message})`);
  }
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
