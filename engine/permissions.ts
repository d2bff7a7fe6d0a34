import { INTERNAL_RIGHT, RIGHT, type PermissionGroup, type Right, type WellKnownPrincipal } from './config/types.js';

/**
 * Exchange's permission groups expanded into allow ACEs per principal
 * (Microsoft Learn, "Receive connectors" → "Receive connector permission groups", Exchange 2016/2019). A group grants rights to the
 * principals it names; a session only benefits when it holds that principal.
 */
const {
  submit: SUBMIT,
  acceptAnyRecipient: ANY_RECIPIENT,
  acceptAnySender: ANY_SENDER,
  acceptAuthoritativeDomainSender: AUTHORITATIVE_SENDER,
  acceptAuthenticationFlag: AUTH_FLAG,
  acceptHeadersRouting: HEADERS_ROUTING,
  acceptHeadersOrganization: HEADERS_ORGANIZATION,
  acceptHeadersForest: HEADERS_FOREST,
  bypassAntiSpam: BYPASS_ANTISPAM,
  bypassMessageSizeLimit: BYPASS_SIZE,
  acceptExch50: EXCH50,
} = RIGHT;

/** Rights of server-class principals (Exchange Servers' Externally Secured column, Legacy). */
const SERVER_CLASS: readonly Right[] = [
  SUBMIT,
  ANY_RECIPIENT,
  ANY_SENDER,
  AUTHORITATIVE_SENDER,
  AUTH_FLAG,
  HEADERS_ROUTING,
  BYPASS_ANTISPAM,
  BYPASS_SIZE,
  EXCH50,
];

/** Internal Exchange-to-Exchange rights, granted to Exchange Servers only (not Ext-Sec). */
const EXCHANGE_INTERNAL: readonly Right[] = Object.values(INTERNAL_RIGHT);

export const PERMISSION_GROUPS: Readonly<
  Record<PermissionGroup, Readonly<Partial<Record<WellKnownPrincipal, readonly Right[]>>>>
> = {
  AnonymousUsers: {
    anonymous: [SUBMIT, ANY_SENDER, AUTHORITATIVE_SENDER, HEADERS_ROUTING],
  },
  ExchangeUsers: {
    authenticated: [SUBMIT, ANY_RECIPIENT, BYPASS_ANTISPAM, HEADERS_ROUTING],
  },
  ExchangeServers: {
    exchange_servers: [...SERVER_CLASS, HEADERS_ORGANIZATION, HEADERS_FOREST, ...EXCHANGE_INTERNAL],
    externally_secured: SERVER_CLASS,
  },
  ExchangeLegacyServers: {
    exchange_legacy_servers: SERVER_CLASS,
  },
  Partners: {
    partner: [SUBMIT, HEADERS_ROUTING],
  },
};

/**
 * Group names (lower-cased) whose members hold a server principal when they authenticate,
 * as Exchange's "Exchange Servers" and "ExchangeLegacyInterop" security groups do.
 */
export const SERVER_GROUPS: Readonly<Record<string, WellKnownPrincipal>> = {
  'exchange servers': 'exchange_servers',
  exchangelegacyinterop: 'exchange_legacy_servers',
};
