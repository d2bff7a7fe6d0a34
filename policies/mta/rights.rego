# Principals and effective rights at each stage
#
# Exchange's transport permission model: a session holds a set of principals (its access
# token); the connector holds an ACL of allow/deny ACEs per principal (permission groups
# expanded at load time, plus explicit ACEs); effective rights = union of allows minus union
# of denies. The session document (session.rego) computes them once; from MAIL FROM on, an
# anonymous Domain Secure sender becomes the partner principal here.
package mta

# Right names are defined once, in engine/config/types.ts; data.config.right_names maps a
# stable key to each.
right_submit := data.config.right_names.smtp_submit

right_any_recipient := data.config.right_names.smtp_accept_any_recipient

right_any_sender := data.config.right_names.smtp_accept_any_sender

right_authoritative_sender := data.config.right_names.smtp_accept_authoritative_domain_sender

right_authentication_flag := data.config.right_names.smtp_accept_authentication_flag

right_headers_routing := data.config.right_names.accept_headers_routing

right_headers_organization := data.config.right_names.accept_headers_organization

right_headers_forest := data.config.right_names.accept_headers_forest

right_bypass_antispam := data.config.right_names.bypass_anti_spam

right_bypass_size := data.config.right_names.bypass_message_size_limit

# BasicAuthRequireTLS: basic authentication counts only over TLS (RFC 4954 §4).
auth_transport_ok if not conn.auth.basic_require_tls

auth_transport_ok if input.tls.active

# --- identity ---------------------------------------------------------------------------------

authenticated if current_session.authenticated == true

login := current_session.login if authenticated

# The configured identity behind the login, if any.
identity := data.config.users[current_session.identity]

# Domain Secure (mutual TLS): from MAIL FROM on (input.mail is present), an anonymous session whose
# sender domain is on the domain-secure list and whose verified client certificate names that
# domain becomes Partner.
partner_domain := domain if {
	input.mail
	is_string(current_session.partner_rights)
	conn.domain_secure
	not authenticated
	domain := input.mail.address.domain
	data.config.server.domain_secure[domain]
	input.tls.active
	input.tls.client_cert.verified
	input.tls.client_cert.names[domain]
}

partner_principal if {
	partner_domain
	not conn.auth.external_authoritative
}

principals := {"partner"} if {
	partner_principal
} else := {p | some p in current_session.principals}

rights_flags := current_session.partner_rights if {
	partner_principal
} else := current_session.rights

# The effective rights by name (for extensions; the checks use has_right).
rights contains right if {
	some i, right in data.config.right_order
	substring(rights_flags, i, 1) == "1"
}

default has_right(_) := false

has_right(right) if substring(rights_flags, data.config.right_index[right], 1) == "1"

# Each right the checks use, as a rule (evaluated at most once per decision).
default holds_submit := false

holds_submit if has_right(right_submit)

default holds_any_recipient := false

holds_any_recipient if has_right(right_any_recipient)

default holds_any_sender := false

holds_any_sender if has_right(right_any_sender)

default holds_authoritative_sender := false

holds_authoritative_sender if has_right(right_authoritative_sender)

default holds_authentication_flag := false

holds_authentication_flag if has_right(right_authentication_flag)

default holds_headers_routing := false

holds_headers_routing if has_right(right_headers_routing)

default holds_headers_organization := false

holds_headers_organization if has_right(right_headers_organization)

default holds_headers_forest := false

holds_headers_forest if has_right(right_headers_forest)

default holds_bypass_antispam := false

holds_bypass_antispam if has_right(right_bypass_antispam)

default holds_bypass_size := false

holds_bypass_size if has_right(right_bypass_size)

# Exchange: Bypass-Message-Size-Limit also bypasses header size, recipient count and rate limits.
bypass_size if holds_bypass_size
