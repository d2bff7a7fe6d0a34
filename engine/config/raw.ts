/** The configuration's sections as the JSON Schema admits them, before semantic checks. */
import type {
  AcceptedDomainType,
  AuthMechanism,
  Dialect,
  MessageRateSource,
  PermissionGroup,
  Usage,
} from './types.js';

// ---------------------------------------------------------------------------------------------
// Raw (schema-checked) shapes
// ---------------------------------------------------------------------------------------------

interface RawReply {
  code: number;
  enhanced: string;
  text: string;
  disconnect?: boolean;
}
export type RawReplies = Record<string, RawReply>;

export interface RawServer {
  fqdn: string;
  dialect?: Dialect;
  local_addresses?: string[];
  domain_secure_domains?: string[];
  organization_header_prefixes?: string[];
  forest_header_prefixes?: string[];
  replies?: RawReplies;
}

export interface RawAcceptedDomain {
  domain: string;
  type?: AcceptedDomainType;
}

export interface RawUser {
  name: string;
  addresses?: string[];
  groups?: string[];
  send_as?: string[];
  logins?: string[];
}

interface RawAce {
  principal: string;
  allow?: string[];
  deny?: string[];
}

export type RawLimit = number | string;

export interface RawConnector {
  name: string;
  enabled?: boolean;
  usage: Usage;
  bindings?: string[];
  remote_ip_ranges?: string[];
  permission_groups?: (PermissionGroup | 'None')[];
  auth_mechanisms?: AuthMechanism[];
  require_tls?: boolean;
  fqdn?: string;
  banner?: string | null;
  dialect?: Dialect;
  max_message_size?: number | string;
  max_header_size?: number | string;
  max_recipients_per_message?: RawLimit;
  max_inbound_connection?: RawLimit;
  max_inbound_connection_per_source?: RawLimit;
  message_rate_limit?: RawLimit;
  message_rate_source?: MessageRateSource;
  max_logon_failures?: number;
  max_hop_count?: number;
  require_ehlo_domain?: boolean;
  domain_secure_enabled?: boolean;
  basic_auth_mechanisms?: string[];
  extended_rights?: RawAce[];
  replies?: RawReplies;
}
