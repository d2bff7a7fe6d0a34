/** Shared pieces of the milter tests: fixture loading, a recording logger, scripted handlers. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Frame } from '../../adapters/milter/codec.js';
import type { Macros } from '../../adapters/milter/macros.js';
import type { ConnectInfo, EomResult, MilterAction, MilterHandler, MilterLogger } from '../../adapters/milter/types.js';
import { root } from '../helpers/engine.js';

export const FIXTURE_DIR = join(root, 'test', 'fixtures', 'milter');

/** One recorded packet: direction, raw bytes (length prefix included) and the frame. */
export interface RecordedPacket {
  readonly from: 'mta' | 'milter';
  readonly bytes: Buffer;
  readonly frame: Frame;
  readonly line: number;
}

export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.hex'))
    .sort();
}

/** Parse a `*.hex` capture (see test/fixtures/milter/README.md). */
export function loadFixture(name: string): RecordedPacket[] {
  const out: RecordedPacket[] = [];
  readFileSync(join(FIXTURE_DIR, name), 'utf8')
    .split('\n')
    .forEach((text, i) => {
      const dir = text[0];
      if (dir !== '>' && dir !== '<') return;
      const bytes = Buffer.from(text.slice(1).replace(/#.*/, '').replace(/\s+/g, ''), 'hex');
      if (bytes.length < 5 || bytes.readUInt32BE(0) !== bytes.length - 4) throw new Error(`${name}:${i + 1}: bad packet`);
      out.push({ from: dir === '>' ? 'mta' : 'milter', bytes, frame: { command: bytes[4] as number, data: bytes.subarray(5) }, line: i + 1 });
    });
  return out;
}

/** `Buffer` from spaced hex. */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: Record<string, unknown>;
  readonly msg: string | undefined;
}

/** A MilterLogger that keeps every line (children share the array and merge bindings). */
export function recordingLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): MilterLogger & { readonly lines: LogLine[] } {
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: { ...bindings, ...(obj as Record<string, unknown>) }, msg });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => recordingLogger(lines, { ...bindings, ...b }),
  };
}

/** One handler call as recorded by {@link scriptedHandler}. */
export interface Call {
  readonly method: string;
  readonly args: readonly unknown[];
  readonly macros?: Record<string, string>;
}

type Script = {
  [K in 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'unknown']?: (...args: never[]) => MilterAction | Promise<MilterAction>;
} & { eom?: (macros: Macros) => EomResult | Promise<EomResult>; abort?: () => void | Promise<void>; close?: () => void | Promise<void> };

/**
 * A handler that records every call (with a macro snapshot) and answers continue, except where
 * `script` answers. Script functions receive the same arguments as the handler method.
 */
export function scriptedHandler(script: Script = {}, calls: Call[] = []): MilterHandler & { readonly calls: Call[] } {
  const rec = (method: string, args: unknown[], macros?: Macros): void => {
    calls.push(macros === undefined ? { method, args } : { method, args, macros: macros.toObject() });
  };
  const step =
    (method: keyof Script) =>
    (...args: unknown[]): MilterAction | Promise<MilterAction> => {
      const macros = args[args.length - 1] as Macros;
      rec(method, args.slice(0, -1), macros);
      const f = script[method] as ((...a: unknown[]) => MilterAction | Promise<MilterAction>) | undefined;
      return f === undefined ? { kind: 'continue' } : f(...args);
    };
  return {
    calls,
    connect: step('connect') as (info: ConnectInfo, m: Macros) => MilterAction,
    helo: step('helo'),
    mail: step('mail'),
    rcpt: step('rcpt'),
    data: step('data'),
    header: step('header'),
    eoh: step('eoh'),
    body: step('body'),
    unknown: step('unknown'),
    eom: (macros: Macros) => {
      rec('eom', [], macros);
      return script.eom === undefined ? { action: { kind: 'continue' } } : script.eom(macros);
    },
    abort: () => {
      rec('abort', []);
      return script.abort?.();
    },
    close: () => {
      rec('close', []);
      return script.close?.();
    },
  };
}
