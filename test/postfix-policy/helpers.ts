/**
 * Shared by the policy-server tests, the real-Postfix test and the benchmark: examples/northwind.yaml
 * moved onto loopback, the captured requests, a policy client, and a recording logger. Nothing
 * here imports vitest.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseDocument, isMap, isSeq, YAMLMap, YAMLSeq } from 'yaml';
import { ReplyDecoder, RequestDecoder, encodeRequest, type PolicyRequest } from '../../adapters/postfix-policy/codec.js';
import type { ListenAddress } from '../../adapters/shared/listen.js';
import type { PolicyLogger } from '../../adapters/postfix-policy/server.js';
import { projectRoot } from '../../engine/bundle.js';
import { MemoryCounters, type Counters } from '../../engine/counters.js';
import { parseConfig } from '../../engine/config/load.js';
import type { Config } from '../../engine/config/types.js';

export const root = projectRoot();
export const fixtureDir = join(root, 'test', 'postfix-policy', 'fixtures');
export const northwindFile = join(root, 'examples', 'northwind.yaml');

/** The example's client addresses, as loopback addresses a test client can bind (10.x → 127.x). */
export const loopbackIp = (ip: string): string => ip.replace(/^10\./, '127.');
export const SCANNER_IP = loopbackIp('10.20.30.40');
export const LAN_IP = loopbackIp('10.20.5.5');
/** A client only the "Default Frontend" (all addresses) matches. */
export const INTERNET_IP = '127.0.0.80';

/**
 * examples/northwind.yaml with every port-25 connector bound to `smtp` ports (same hosts), the
 * client connector to `submission` ports, and the 10.0.0.0/8 ranges moved to 127.0.0.0/8
 * (so the Scanner Relay is 127.20.30.40 and the LAN 127.20.0.0/16). Everything else — rights,
 * accepted domains, identities, replies — is the example's.
 */
export function northwindOnLoopback(ports: { readonly smtp: readonly number[]; readonly submission?: readonly number[] }): Config {
  const doc = parseDocument(readFileSync(northwindFile, 'utf8'));
  const connectors = doc.get('connectors');
  if (!isSeq(connectors)) throw new Error('northwind.yaml: connectors is not a list');
  for (const c of (connectors as YAMLSeq).items) {
    if (!isMap(c)) continue;
    const m = c as YAMLMap;
    const usage = String(m.get('usage'));
    const p = usage === 'client' ? (ports.submission ?? []) : ports.smtp;
    // Each binding's host is kept; a connector with default bindings gets both wildcards.
    const b = m.get('bindings');
    const hosts = isSeq(b) ? (b as YAMLSeq).items.map((x) => String((x as { value?: unknown }).value).replace(/:[0-9]+$/, '')) : ['0.0.0.0', '[::]'];
    m.set('bindings', p.flatMap((n) => hosts.map((h) => `${h}:${n}`)));
    const ranges = m.get('remote_ip_ranges');
    if (isSeq(ranges)) m.set('remote_ip_ranges', (ranges as YAMLSeq).items.map((r) => loopbackIp(String((r as { value?: unknown }).value ?? r))));
  }
  return parseConfig(doc.toString(), northwindFile);
}

/** A captured file split into its requests (decoded with our codec; the fixture tests check that it is total). */
export function capturedRequests(name: string): PolicyRequest[] {
  const d = new RequestDecoder();
  const r = d.push(readFileSync(join(fixtureDir, `postfix-${name}.policy`)));
  if (r.error !== undefined || d.pending) throw new Error(`${name}: ${r.error?.message ?? 'trailing bytes'}`);
  return [...r.requests];
}

export const CAPTURES = ['plain', 'two-messages', 'vrfy-etrn', 'utf8', 'tls-trusted', 'tls-untrusted', 'sasl'] as const;

/** A minimal Postfix-side client: one request at a time on one connection. */
export class PolicyClient {
  private readonly decoder = new ReplyDecoder();
  private readonly waiting: Array<(a: string | Error) => void> = [];
  private readonly ready: string[] = [];
  private closedError: Error | undefined;

  private constructor(readonly socket: Socket) {
    socket.on('data', (b: Buffer) => {
      const r = this.decoder.push(b);
      for (const a of r.actions) this.deliver(a);
      if (r.error !== undefined) this.fail(r.error);
    });
    socket.on('close', () => this.fail(new Error('connection closed')));
    socket.on('error', (e) => this.fail(e));
  }

  static async open(address: ListenAddress, localAddress?: string): Promise<PolicyClient> {
    const socket = address.transport === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port, ...(localAddress === undefined ? {} : { localAddress }) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    return new PolicyClient(socket);
  }

  /** Sends one request and waits for its action. */
  ask(attrs: Readonly<Record<string, string>> | PolicyRequest): Promise<string> {
    this.socket.write(encodeRequest(attrs instanceof Map ? attrs : (attrs as Readonly<Record<string, string>>)));
    return this.next();
  }

  /** Sends raw bytes. */
  send(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** The next action, or a rejection when the connection closed first. */
  next(): Promise<string> {
    const a = this.ready.shift();
    if (a !== undefined) return Promise.resolve(a);
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => this.waiting.push((x) => (x instanceof Error ? reject(x) : resolve(x))));
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  close(): void {
    this.socket.destroy();
  }

  private deliver(a: string): void {
    const w = this.waiting.shift();
    if (w === undefined) this.ready.push(a);
    else w(a);
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const w of this.waiting.splice(0)) w(e);
  }
}

export interface LogLine {
  readonly level: string;
  readonly obj: Record<string, unknown>;
  readonly msg: string | undefined;
}

/** A pino-shaped logger that keeps every line (child bindings merged in). */
export function recordingLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): PolicyLogger & { lines: LogLine[]; info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void } {
  const at = (level: string) => (obj: object, msg?: string): void => {
    lines.push({ level, obj: { ...bindings, ...(obj as Record<string, unknown>) }, msg });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => recordingLogger(lines, { ...bindings, ...b }) };
}

/** A request as Postfix 3.7 sends it at `state`, from the captured `plain` RCPT request, with `over` applied. */
export function request(state: string, over: Readonly<Record<string, string>> = {}): Map<string, string> {
  const base = capturedRequests('plain').find((r) => r.get('protocol_state') === 'RCPT');
  if (base === undefined) throw new Error('plain capture has no RCPT');
  const m = new Map(base);
  m.set('protocol_state', state);
  for (const [k, v] of Object.entries(over)) m.set(k, v);
  return m;
}

/**
 * In-memory counters whose message-rate read is `rate` — e.g. a store that is down
 * (`() => Promise.reject(…)`: an engine failure on every rate-limited connector) or one that
 * answers late. Everything else is MemoryCounters.
 */
export function countersWithRate(rate: () => Promise<number>): Counters {
  const base = new MemoryCounters();
  return {
    openConnection: (k) => base.openConnection(k),
    closeConnection: (k) => base.closeConnection(k),
    recordMessage: (k) => base.recordMessage(k),
    messagesLastMinute: rate,
  };
}

/** The counter store is unreachable. */
export const unreachableCounters = (): Counters => countersWithRate(() => Promise.reject(new Error('counter store unreachable')));
