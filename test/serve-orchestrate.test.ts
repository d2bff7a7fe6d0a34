/**
 * The orchestration behind `serve` (cli/serve/serve.ts), in process: the adapter registry is
 * data (an entry for connectors with `listen: true` lifts the refusal, as adapters/submission's
 * entry will), reloads never overlap, and closing is idempotent. The milter and the policy
 * server are the real ones on 127.0.0.1:0 / a unix socket; the third entry is a bare TCP
 * listener standing in for the submission adapter's start function.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ADAPTERS, MILTER, POSTFIX_POLICY, SUBMISSION, nativeListeners, type AdapterEntry } from '../cli/serve/adapters.js';
import { startServe, type Served } from '../cli/serve/serve.js';
import { parseConfig } from '../engine/config/load.js';
import { EXIT, main } from '../cli/program.js';
import { captureIo } from './helpers/engine.js';
import { NORTHWIND, northwindText } from './bench/milter-config.js';
import { recordingLogger, type LogLine } from './milter/helpers.js';

const dirs: string[] = [];
const open: Served[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close(100)));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mta-policy-orchestrate-'));
  dirs.push(dir);
  const file = join(dir, 'c.yaml');
  writeFileSync(file, text.replaceAll('@DIR@', dir));
  return file;
}

/** A native-listener entry: listens once per planned binding, on a free loopback port. */
const NATIVE: AdapterEntry = {
  name: 'submission',
  plan: nativeListeners,
  async start({ plan }) {
    const servers = await Promise.all(
      plan.map(async (p) => {
        const s = createServer((sock) => sock.end('220 test\r\n'));
        await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, r));
        return { s, l: { address: `127.0.0.1:${(s.address() as { port: number }).port}`, connectors: p.connectors } };
      }),
    );
    return {
      listeners: servers.map((x) => x.l),
      close: () => Promise.all(servers.map((x) => new Promise<void>((r) => x.s.close(() => r())))).then(() => undefined),
    };
  },
};

async function start(file: string, adapters: readonly AdapterEntry[] = ADAPTERS): Promise<{ served: Served; lines: LogLine[] }> {
  const lines: LogLine[] = [];
  const served = await startServe({ configFile: file, logger: recordingLogger(lines), adapters });
  open.push(served);
  return { served, lines };
}

const NATIVE_TEXT = northwindText({ [NORTHWIND.client]: { listen: true, bindings: ['127.0.0.1:2587', '127.0.0.2:2587'] } }, { postfix_policy: { listen: 'unix:@DIR@/p.sock' } });

describe('serve orchestration', () => {
  it('the shipped registry is the milter, the policy server and the submission listener, in that order', () => {
    expect(ADAPTERS).toEqual([MILTER, POSTFIX_POLICY, SUBMISSION]);
    expect(SUBMISSION.plan).toBe(nativeListeners);
  });

  it('refuses listen: true connectors no entry serves; one entry for them is all it takes', async () => {
    const file = configFile(NATIVE_TEXT);
    await expect(start(file, [MILTER, POSTFIX_POLICY])).rejects.toMatchObject({ code: 'SERVE_NATIVE_UNSERVED', message: expect.stringContaining(`"${NORTHWIND.client}" has listen: true`) });
    const { served, lines } = await start(file, [MILTER, POSTFIX_POLICY, NATIVE]);
    expect(served.listeners.map((l) => [l.adapter, l.connectors])).toEqual([
      ['postfix-policy', [NORTHWIND.internet, NORTHWIND.lan, NORTHWIND.partner, NORTHWIND.scanner]],
      ['submission', [NORTHWIND.client]],
      ['submission', [NORTHWIND.client]],
    ]);
    const listening = lines.filter((l) => l.msg === 'listening');
    expect(listening.map((l) => l.obj['adapter'])).toEqual(['postfix-policy', 'submission', 'submission']);
    // It really listens where it says.
    const banner = await new Promise<string>((resolve, reject) => {
      const [host, port] = (served.listeners[1]?.address ?? '').split(':');
      const s = connect({ host: host as string, port: Number(port) });
      s.setEncoding('utf8').once('data', resolve).once('error', reject);
    });
    expect(banner).toBe('220 test\r\n');
  });

  it('plans one native listener per binding of every enabled listen: true connector', () => {
    const config = parseConfig(NATIVE_TEXT.replaceAll('@DIR@', '/run'), 'c.yaml');
    expect(nativeListeners(config).map((p) => [p.address, p.connectors])).toEqual([
      ['127.0.0.1:2587', [NORTHWIND.client]],
      ['127.0.0.2:2587', [NORTHWIND.client]],
    ]);
    expect(MILTER.plan(config)).toEqual([]);
    expect(POSTFIX_POLICY.plan(config).map((p) => p.address)).toEqual(['unix:/run/p.sock']);
  });

  it('with nothing configured to serve, refuses to start', async () => {
    const file = configFile(northwindText({ [NORTHWIND.client]: { enabled: false }, [NORTHWIND.internet]: { enabled: false }, [NORTHWIND.lan]: { enabled: false }, [NORTHWIND.partner]: { enabled: false }, [NORTHWIND.scanner]: { enabled: false } }));
    await expect(start(file)).rejects.toMatchObject({ code: 'SERVE_NOTHING_TO_SERVE' });
  });

  it('reloads never overlap: three at once run as two, each answered', async () => {
    const file = configFile(northwindText({}, { postfix_policy: { listen: 'unix:@DIR@/p.sock' } }));
    const { served, lines } = await start(file);
    const outcomes = await Promise.all([served.reload('a'), served.reload('b'), served.reload('c')]);
    expect(outcomes).toEqual([
      { ok: true, restartNeeded: false },
      { ok: true, restartNeeded: false },
      { ok: true, restartNeeded: false },
    ]);
    expect(lines.filter((l) => l.msg === 'configuration reloaded')).toHaveLength(2);
  });

  it('--shutdown-timeout takes positive seconds; anything else is a usage error before anything starts', async () => {
    const file = configFile(northwindText({}, { postfix_policy: { listen: 'unix:@DIR@/p.sock' } }));
    for (const bad of ['abc', '0', '-1', '1e3', '90000']) {
      const { io, err } = captureIo();
      expect(await main(['serve', '--config', file, '--shutdown-timeout', bad], io)).toBe(EXIT.usage);
      expect(err()).toContain("option '--shutdown-timeout <seconds>' argument");
    }
    const { io, err } = captureIo();
    expect(await main(['serve', '--config', file, '--log-level', 'loud'], io)).toBe(EXIT.usage);
    expect(err()).toContain('Allowed choices are fatal, error, warn, info, debug, trace, silent');
  });

  it('close is idempotent and a reload after it is refused', async () => {
    const file = configFile(northwindText({}, { postfix_policy: { listen: 'unix:@DIR@/p.sock' } }));
    const { served } = await start(file);
    const a = served.close(100);
    expect(served.close(100)).toBe(a);
    await a;
    expect(await served.reload('test')).toMatchObject({ ok: false });
  });
});
