/**
 * The configuration's top level, and the published JSON Schema (draft 2020-12), generated from
 * the same definitions the loader decodes with. `npm run schema` writes it to
 * schema/config.schema.json; a test fails when the committed file is stale.
 */
import { Defs, deferred, obj, optional, type Decoder, type JsonSchema } from './decode.js';
import { caselessPattern } from './scalars.js';
import { connectors, type ConnectorEnv } from './connectors.js';
import { ACCEPTED_DOMAINS, identitiesSection, serverSection } from './sections.js';
import { listener } from './values.js';
import { RIGHTS } from './types.js';

export const SCHEMA_ID = 'urn:mta-policy:config:v1';

/** Top-level keys that must be present, with the fix for each. */
export const REQUIRED_SECTIONS = {
  server: 'add `server:` with at least `fqdn: smtp.example.com`',
  connectors: 'add `connectors:` with at least one connector (or `connectors: []`)',
} as const;

/** Decoding `connectors` needs the server and identities; the schema does not. */
const SCHEMA_ENV: ConnectorEnv = {
  server: { fqdn: 'localhost', dialect: 'exchange' },
  principals: { userNames: new Map(), groupNames: new Map(), reliable: false },
  configFile: '',
  listenDefault: true,
};

/** The top level: each section is decoded on its own, once the sections it needs are. */
export const ROOT = obj(
  {
    server: optional(deferred(serverSection('')), { description: 'Server-wide settings (Exchange: the transport server and Set-TransportConfig).' }),
    accepted_domains: optional(deferred(ACCEPTED_DOMAINS), {
      description: 'Domains this organisation accepts mail for (Exchange: Get-AcceptedDomain). Recipients in them never need the relay right.',
      schema: { default: [] },
    }),
    identities: optional(deferred(identitiesSection('')), { description: 'Users and servers that can authenticate with SMTP AUTH, their addresses and groups.' }),
    connectors: optional(deferred(connectors(SCHEMA_ENV) as Decoder<unknown>), {
      description:
        'Receive connectors (Exchange: Get-ReceiveConnector). A connection is handled by the enabled connector whose binding matches the local ip:port and whose remote IP ranges match the client most specifically.',
    }),
    milter: optional(deferred(listener('milter')), { description: 'The milter for Postfix (smtpd_milters) and Sendmail (INPUT_MAIL_FILTER).' }),
    postfix_policy: optional(deferred(listener('Postfix policy server')), { description: 'The Postfix policy-delegation server (check_policy_service).' }),
  },
  { schema: { required: Object.keys(REQUIRED_SECTIONS) } },
);

/** Extended-right names in any letter case (the pattern the schema publishes for them). */
export const RIGHT_PATTERN = caselessPattern(RIGHTS);

function build(): JsonSchema {
  const defs = new Defs();
  const root = ROOT.schema(defs);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'mta-policy configuration',
    description:
      'Exchange-style SMTP receive connectors, accepted domains and identities for mta-policy. Keys follow the Exchange parameter names in snake_case.',
    ...root,
    $defs: defs.defs,
  };
}

export const CONFIG_SCHEMA: JsonSchema = build();
