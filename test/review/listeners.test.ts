/**
 * Review finding: `engine.listeners` (engine/listeners.ts ListenerSpec) is what adapters/README
 * tells an adapter to read at start-up to open its listeners, and issue 5 §2 asks for
 * "the listeners to open (bindings per connector, TLS/implicit-TLS, SIZE, AUTH mechanisms)".
 * ListenerSpec has no implicit-TLS flag and no `listen` flag, although ConnectorConfig has both
 * (`implicitTls`, `listen`): an adapter driven by engine.listeners cannot tell a port-465
 * listener (TLS from the first byte, RFC 8314) from a STARTTLS one, and lists — and would
 * open — bindings that belong to the MTA in front (`listen: false`, the default with
 * `milter:` / `postfix_policy:`).
 *
 * Expected: every ListenerSpec says whether it is implicit TLS and whether mta-policy serves it
 * (or bindings not served are left out).
 */
import { describe, expect, it } from 'vitest';
import { engineFor } from './helpers.js';

describe('engine.listeners', () => {
  it('says which listener is implicit TLS', async () => {
    const engine = await engineFor(`
server: { fqdn: mx.test }
connectors:
  - { name: Submission, usage: client }
  - { name: Smtps, usage: client, bindings: ["0.0.0.0:465"] }
`);
    expect(engine.config.connectors.find((c) => c.name === 'Smtps')?.implicitTls).toBe(true); // the config knows
    const smtps = engine.listeners.find((l) => l.port === 465);
    expect(smtps).toMatchObject({ implicitTls: true });
    expect(engine.listeners.find((l) => l.port === 587)).toMatchObject({ implicitTls: false });
  });

  it('does not offer bindings mta-policy does not serve (listen: false)', async () => {
    const engine = await engineFor(`
server: { fqdn: mx.test }
milter: { listen: "inet:8891@127.0.0.1" }
connectors:
  - { name: Inbound, usage: internet, bindings: ["0.0.0.0:25"] }
`);
    expect(engine.config.connectors[0]?.listen).toBe(false); // the config knows
    const served = engine.listeners.filter((l) => (l as { listen?: boolean }).listen !== false);
    expect(served).toEqual([]);
  });
});
