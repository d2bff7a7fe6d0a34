# The session document: what depends only on the endpoints, the TLS state and the AUTH result.
#
# Entrypoint mta/session evaluates it on exactly that restricted input (input.connection,
# input.tls.active, input.auth); the engine caches the result per session and passes it to
# every stage as input.session. A stage never recomputes it, and nothing an adapter sends can
# replace it. Without input.session (opa eval, the Rego unit tests) the stages compute it
# inline from the same rules, which is what the engine's equivalence test compares against.
#
# Nothing here may read input.mail, input.rcpt, input.message, input.helo or input.counters:
# those are not in the restricted input, so a rule that did would differ between the two modes.
package mta

# Entrypoint mta/session.
session := session_doc

# The session document a stage reads: the engine's (cached mode), else computed here.
current_session := input.session if {
	input.session
} else := session_doc

session_doc := {
	"connector": session_connector,
	"selected_by": selected_by,
	"authenticated": session_authenticated,
	"login": session_login,
	"identity": session_identity,
	"principals": sort(session_principals),
	"rights": rights_string(session_rights),
	"partner_rights": session_partner_rights,
	"unknown_identity": session_unknown_identity,
	"mta_auth": mta_auth_problem,
}

session_connector := selected.connector if selected

session_connector := null if not selected

selected_by := {"binding": selected.binding, "range": selected.range} if selected

selected_by := null if not selected

# Rights travel as a string of "0"/"1", one character per right in data.config.right_order:
# has_right is then a substring, with no number arithmetic (which WASM does in decimals).
rights_string(names) := concat("", [right_char(names, r) | some r in data.config.right_order])

right_char(names, r) := "1" if {
	r in names
} else := "0"

# --- authentication -------------------------------------------------------------------------

# The session authenticated (at the AUTH stage: this attempt succeeded) in a way this connector
# accepts, as an identity it knows.
default session_authenticated := false

session_authenticated if {
	input.auth.result == "success"
	session_auth_acceptable
	session_login_acceptable
}

# AUTH run by mta-policy's own listener: BasicAuth offered, over TLS where BasicAuthRequireTLS,
# with one of the connector's mechanisms.
session_auth_acceptable if {
	not input.auth.mta
	selected_conn.auth.basic
	session_transport_ok
	input.auth.mechanism in selected_conn.sasl
}

# AUTH run by the MTA (milter, policy service): the MTA chose the mechanisms, but the connector
# must allow authentication at all, and over TLS where BasicAuthRequireTLS.
session_auth_acceptable if {
	input.auth.mta
	selected_conn.auth.basic
	session_transport_ok
}

# BasicAuthRequireTLS: basic authentication counts only over TLS (RFC 4954 §4).
session_transport_ok if not selected_conn.auth.basic_require_tls

session_transport_ok if input.tls.active

# A login the configuration does not list is accepted only where identities.unlisted_logins
# says so: otherwise a credential backend's alias could dodge a user's deny entries.
session_login_acceptable if data.config.logins[input.auth.login]

session_login_acceptable if {
	not data.config.logins[input.auth.login]
	data.config.unlisted_logins == "authenticated"
}

session_login := input.auth.login if session_authenticated

session_login := null if not session_authenticated

session_identity := data.config.logins[input.auth.login] if session_authenticated

session_identity := null if {
	session_authenticated
	not data.config.logins[input.auth.login]
}

session_identity := null if not session_authenticated

default session_unknown_identity := false

session_unknown_identity if {
	input.auth.result == "success"
	not session_login_acceptable
}

# Why an AUTH the MTA reports does not count; MAIL refuses the session with this reason.
mta_auth_problem := "mta_auth_not_enabled" if {
	input.auth.mta
	input.auth.result == "success"
	selected_conn
	not selected_conn.auth.basic
} else := "mta_auth_requires_tls" if {
	input.auth.mta
	input.auth.result == "success"
	selected_conn.auth.basic
	not session_transport_ok
} else := "mta_auth_unknown_identity" if {
	input.auth.mta
	session_unknown_identity
} else := null

# --- principals and rights ------------------------------------------------------------------

session_identity_principals := {p | some p in data.config.users[session_identity].principals} if {
	session_authenticated
	is_string(session_identity)
} else := {"authenticated", concat(":", ["user", session_login])} if {
	session_authenticated
} else := set()

session_base_principals := {"externally_secured"} if {
	selected_conn.auth.external_authoritative
} else := {"anonymous"} if {
	not session_authenticated
} else := set()

session_principals := session_base_principals | session_identity_principals

# Effective rights = union of what the ACL allows these principals minus every right it denies
# any of them: a deny always wins.
session_rights := acl_rights(session_principals)

acl_rights(holders) := allowed - denied if {
	allowed := {r | some p in holders; some r in selected_conn.acl[p].allow}
	denied := {r | some p in holders; some r in selected_conn.acl[p].deny}
}

# What a Domain Secure partner would hold here (the switch happens at MAIL FROM, rights.rego).
session_partner_rights := rights_string(acl_rights({"partner"})) if {
	selected_conn.domain_secure
	not session_authenticated
	not selected_conn.auth.external_authoritative
} else := null
