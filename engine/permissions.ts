import { RIGHTS, type PermissionGroup, type Right, type WellKnownPrincipal } from './config/types.js';

/**
 * Exchange's permission groups expanded into allow ACEs per principal
 * (connector-model.md §1.6, Exchange 2016/2019 documentation). A group grants rights to the
 * principals it names; a session only benefits when it holds that principal.
 */
const SUBMIT = 'ms-Exch-SMTP-Submit';
const ANY_RECIPIENT = 'ms-Exch-SMTP-Accept-Any-Recipient';
const ANY_SENDER = 'ms-Exch-SMTP-Accept-Any-Sender';
const AUTHORITATIVE_SENDER = 'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender';
const AUTH_FLAG = 'ms-Exch-SMTP-Accept-Authentication-Flag';
const HEADERS_ROUTING = 'ms-Exch-Accept-Headers-Routing';
const HEADERS_ORGANIZATION = 'ms-Exch-Accept-Headers-Organization';
const HEADERS_FOREST = 'ms-Exch-Accept-Headers-Forest';
const BYPASS_ANTISPAM = 'ms-Exch-Bypass-Anti-Spam';
const BYPASS_SIZE = 'ms-Exch-Bypass-Message-Size-Limit';
const EXCH50 = 'ms-Exch-SMTP-Accept-Exch50';

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

/**
 * Internal Exchange-to-Exchange rights, granted to Exchange Servers only (not Ext-Sec): the
 * tail of RIGHTS from Accept-XAttr on.
 */
const EXCHANGE_INTERNAL: readonly Right[] = RIGHTS.slice(RIGHTS.indexOf('ms-Exch-SMTP-Accept-XAttr'));

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
