# Principals and effective rights
#
# Exchange's transport permission model: a session holds a set of principals (its access
# token); the connector holds an ACL of allow/deny ACEs per principal (permission groups
# expanded at load time, plus explicit ACEs); effective rights = union of allows minus union
# of denies. A deny always wins.
package mta

right_submit := "ms-Exch-SMTP-Submit"

right_any_recipient := "ms-Exch-SMTP-Accept-Any-Recipient"

right_any_sender := "ms-Exch-SMTP-Accept-Any-Sender"

right_authoritative_sender := "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"

right_authentication_flag := "ms-Exch-SMTP-Accept-Authentication-Flag"

right_headers_routing := "ms-Exch-Accept-Headers-Routing"

right_headers_organization := "ms-Exch-Accept-Headers-Organization"

right_headers_forest := "ms-Exch-Accept-Headers-Forest"

right_bypass_antispam := "ms-Exch-Bypass-Anti-Spam"

right_bypass_size := "ms-Exch-Bypass-Message-Size-Limit"

# --- identity ---------------------------------------------------------------------------------

# The session authenticated (at the AUTH stage: this attempt succeeded) in a way this connector
# accepts, as an identity it knows. Checked at every stage: in milter mode the MTA ran AUTH, and
# only now does the policy see how.
authenticated if {
	input.auth.result == "success"
	auth_acceptable
	login_acceptable
}

auth_acceptable if {
	conn.auth.basic
	auth_transport_ok
	input.auth.mechanism in conn.sasl
}

# BasicAuthRequireTLS: basic authentication counts only over TLS (RFC 4954 §4).
auth_transport_ok if not conn.auth.basic_require_tls

auth_transport_ok if input.tls.active

# A login the configuration does not list is accepted only where identities.unlisted_logins
# says so: otherwise a credential backend's alias could dodge a user's deny entries.
login_acceptable if data.config.logins[input.auth.login]

login_acceptable if {
	not data.config.logins[input.auth.login]
	data.config.unlisted_logins == "authenticated"
}

login := input.auth.login if authenticated

# The configured identity behind the login, if any.
identity := data.config.users[data.config.logins[login]]

# Domain Secure (mutual TLS): from MAIL FROM on (input.mail is present), an anonymous session whose sender domain is on the
# domain-secure list and whose verified client certificate names that domain becomes Partner.
partner_domain := domain if {
	input.mail
	conn.domain_secure
	not authenticated
	domain := input.mail.address.domain
	data.config.server.domain_secure[domain]
	input.tls.active
	input.tls.client_cert.verified
	input.tls.client_cert.names[domain]
}

identity_principals := {p | some p in identity.principals} if {
	authenticated
	identity
} else := {"authenticated", concat(":", ["user", login])} if {
	authenticated
} else := set()

base_principals := {"externally_secured"} if {
	conn.auth.external_authoritative
} else := {"partner"} if {
	partner_domain
} else := {"anonymous"} if {
	not authenticated
} else := set()

principals := base_principals | identity_principals

# --- rights -----------------------------------------------------------------------------------

allowed_rights contains right if {
	some principal in principals
	some right in conn.acl[principal].allow
}

denied_rights contains right if {
	some principal in principals
	some right in conn.acl[principal].deny
}

rights := allowed_rights - denied_rights

default has_right(_) := false

has_right(right) if right in rights

# Exchange: Bypass-Message-Size-Limit also bypasses header size, recipient count and rate limits.
bypass_size if has_right(right_bypass_size)
