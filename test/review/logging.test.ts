/**
 * Review finding: the decision log's duration (`ms`) for a call refused out of sequence is the
 * process uptime, not the call's duration. Session.sequence() logs with t0 = 0, and
 * Engine.log computes `performance.now() - t0`; every ENGINE_SESSION_SEQUENCE line therefore
 * reports a "duration" of however long the process has run (hours, in a daemon), which breaks
 * any latency dashboard or alert built on the documented "duration" field (adapters/README:
 * "Each decision is logged … with its id, stage, connector, decision, reason and duration").
 *
 * Expected: the logged duration is the time the call took (never more than its wall time).
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { Engine, type EngineLogger } from '../../engine/engine.js';
import { fixtureConfig } from '../helpers/engine.js';

describe('decision log durations', () => {
  it('logs the duration of a call refused out of sequence, not the process uptime', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger: EngineLogger = {
      info: (o) => void lines.push(o as Record<string, unknown>),
      warn: (o) => void lines.push(o as Record<string, unknown>),
      error: (o) => void lines.push(o as Record<string, unknown>),
    };
    const engine = await Engine.create({ config: fixtureConfig(), logger });
    // The worker has been up far longer than one refused call takes (Engine.create alone
    // compiles the WASM), so uptime and duration cannot be confused.
    const s = engine.session({ local: '192.0.2.99:25', remote: '198.51.100.7' });
    const before = performance.now();
    const d = await s.rcpt('<u@contoso.test>'); // before CONNECT: refused out of sequence
    const elapsed = performance.now() - before;
    expect(d.error?.code).toBe('ENGINE_SESSION_SEQUENCE');
    const line = lines.find((l) => l['decision'] === d.id);
    expect(line).toBeDefined();
    expect(line?.['ms'] as number).toBeLessThanOrEqual(elapsed + 1);
  });
});
