# METADATA
# title: mta-policy decisions, one entrypoint per SMTP stage
# description: |
#   Entrypoints: mta/connect mta/ehlo mta/auth mta/mail mta/rcpt mta/headers mta/eom.
#   Each returns one decision document (policies/README.md). The Rego decides *why* (a
#   symbolic reason); the reply catalogue in data decides *what is said*; the engine validates
#   the document before any adapter sees it, and treats anything malformed as a tempfail.
#
#   Extension point: rules in `package mta.ext` may add
#     deny contains {"stage": "<stage>", "reason": "<name>", "reply": {...}} if { ... }
#   (reply optional when the reason is in the catalogue; "decision": "discard" optional).
#   They are consulted after every built-in check and can only tighten.
package mta

# Each entrypoint names its own failure set: a dynamic `failures[stage]` would make the
# compiled plan evaluate every stage's checks on every decision.
connect := stage_decision("connect", connect_failures)

ehlo := object.union(stage_decision("ehlo", ehlo_failures), {"advertise": advertise})

auth := object.union(stage_decision("auth", auth_failures), {"logon_failure": logon_failure})

mail := stage_decision("mail", mail_failures)

rcpt := object.union(stage_decision("rcpt", rcpt_failures), {"recipient": recipient_facts})

headers := object.union(stage_decision("headers", headers_failures), message_outcome)

eom := object.union(stage_decision("eom", eom_failures), message_outcome)

ok_reason(stage) := concat("", ["ok_", stage])

# --- assembling a decision -----------------------------------------------------------------------

# Extension denies for this stage, in a stable order after every built-in check, so two
# firing together never tie.
extension_failures(stage) := {f |
	denies := sort([d | some d in data.mta.ext.deny; d.stage == stage])
	some i, d in denies
	f := object.union(d, {"order": 1000 + i})
}

all_failures(stage, builtin) := builtin | extension_failures(stage)

first_failure(failures) := f if {
	lowest := min({x.order | some x in failures})
	some f in failures
	f.order == lowest
}

# Two separate definitions, not `else`: when a failure's verdict cannot be formed (an
# extension reply with a 2xx code, a reason missing from the catalogue) the decision must be
# undefined, which the engine turns into a tempfail, never fall through to success.
stage_decision(stage, builtin) := object.union(session_facts(failures), verdict(first_failure(failures))) if {
	failures := all_failures(stage, builtin)
	first_failure(failures)
}

stage_decision(stage, builtin) := object.union(session_facts(failures), object.union(
	{"decision": success_kind(stage), "reason": ok_reason(stage)},
	catalogue_reply_field(ok_reason(stage)),
)) if {
	failures := all_failures(stage, builtin)
	not first_failure(failures)
}

success_kind("eom") := "accept"

success_kind(stage) := "continue" if stage != "eom"

# A built-in check, or an extension deny without its own reply or decision: the catalogue
# entry holds the reply and the decision kind (engine/data.ts works it out at load time).
verdict(failure) := object.union({"decision": entry.kind, "reason": failure.reason}, catalogue_reply_field(failure.reason)) if {
	not failure.reply
	not failure.decision
	entry := catalogue_entry(failure.reason)
	entry.kind != "continue" # a 2xx/3xx entry for a refusal: undefined, never success
}

# With input.session the engine takes a catalogue reply from the same compiled catalogue
# itself (engine/decision.ts), so the result need not carry its text; without it, it does.
catalogue_reply_field(reason) := {"reply": catalogue_entry(reason).reply} if {
	not input.session
} else := {}

# An extension deny with its own reply, or "decision": "discard".
verdict(failure) := {
	"decision": failure_kind(failure, reply),
	"reason": failure.reason,
	"reply": {"code": reply.code, "enhanced": reply.enhanced, "text": reply.text},
} if {
	extension_verdict(failure)
	reply := failure_reply(failure)
}

extension_verdict(failure) if failure.reply

extension_verdict(failure) if failure.decision

failure_reply(failure) := failure.reply

failure_reply(failure) := catalogue_entry(failure.reason).reply if not failure.reply

# The connector's override first, else the dialect's catalogue (server overrides included).
catalogue_entry(reason) := conn.replies[reason]

catalogue_entry(reason) := data.config.replies[dialect][reason] if not conn.replies[reason]

failure_kind(failure, _) := "discard" if failure.decision == "discard"

failure_kind(failure, reply) := "disconnect" if {
	not failure.decision == "discard"
	reply.disconnect == true
}

failure_kind(failure, reply) := "reject" if {
	not failure.decision == "discard"
	not reply.disconnect == true
	reply.code >= 500
}

failure_kind(failure, reply) := "tempfail" if {
	not failure.decision == "discard"
	not reply.disconnect == true
	reply.code >= 400
	reply.code < 500
}

# With input.session (the engine's cached session document) the engine already holds the
# connector, principals and rights: the result says only whether the partner switch applied.
# Without it (opa eval, Rego tests) the result carries them, rights as a string of "0"/"1" over
# data.config.right_order.
session_facts(failures) := object.union(principal_facts, explanation(failures))

principal_facts := {
	"connector": current_session.connector,
	"principals": sort(principals),
	"rights": rights_flags,
} if {
	not input.session
} else := {"partner": true} if {
	partner_principal
} else := {}

# Explain mode (input.explain): every failing check in order, and how the connector was chosen.
explanation(failures) := {
	"checks": sort([[f.order, f.reason] | some f in failures]),
	"selected_by": current_session.selected_by,
} if {
	input.explain == true
} else := {}

# --- EHLO advertisement ---------------------------------------------------------------------------

advertise := {
	"starttls": offer_starttls,
	"auth": auth_offer,
	"size": size_offer,
	"require_tls": require_tls_offer,
	"client_certificate": client_certificate_offer,
}

offer_starttls if {
	conn.auth.tls
	not input.tls.active
}

default offer_starttls := false

# BasicAuthRequireTLS hides AUTH until STARTTLS has completed (RFC 4954 §4: no plaintext
# password mechanisms over cleartext).
auth_offer := conn.sasl if {
	conn.auth.basic
	auth_transport_ok
} else := []

size_offer := conn.max_message_size if conn

size_offer := null if not conn

require_tls_offer := conn.require_tls if conn

require_tls_offer := false if not conn

# Ask for a client certificate where it can change the outcome: Domain Secure partners.
client_certificate_offer := "request" if conn.domain_secure

client_certificate_offer := "none" if not conn.domain_secure

# --- RCPT facts -------------------------------------------------------------------------------------

# The recipient's address and domain are the engine's own normalised input; with input.session
# it fills them in itself.
recipient_facts := object.union({"accepted_domain_type": recipient_domain_type, "routed": recipient_routed}, recipient_address) if {
	not input.session
} else := {"accepted_domain_type": recipient_domain_type, "routed": recipient_routed}

recipient_address := {"address": input.rcpt.key, "domain": input.rcpt.domain}

recipient_domain_type := domain_type(input.rcpt)

recipient_domain_type := "local_literal" if {
	not domain_type(input.rcpt)
	local_literal(input.rcpt)
}

recipient_domain_type := null if {
	not domain_type(input.rcpt)
	not local_literal(input.rcpt)
}

recipient_routed := routed(input.rcpt)

default recipient_routed := false

# --- header firewall and message flags (end of headers and end of message) ----------------------------

message_outcome := {
	"header_actions": sort([{"op": "remove", "name": name} | some name in stripped_headers]),
	"message_flags": message_flags,
}

routing_header(name) if name == "received"

routing_header(name) if startswith(name, "resent-")

prefixed_header(name, prefixes) if {
	some prefix in prefixes
	startswith(name, prefix)
}

stripped_headers contains name if {
	not holds_headers_routing
	some name in input.message.header_names
	routing_header(name)
}

stripped_headers contains name if {
	not holds_headers_organization
	some name in input.message.header_names
	prefixed_header(name, data.config.server.organization_header_prefixes)
}

stripped_headers contains name if {
	not holds_headers_forest
	some name in input.message.header_names
	prefixed_header(name, data.config.server.forest_header_prefixes)
}

message_flags := {
	"auth_as": auth_as,
	"bypass_anti_spam": holds_bypass_antispam,
	"accept_authentication_flag": holds_authentication_flag,
	"bypass_message_size_limit": bypass_size_flag,
}

default bypass_size_flag := false

bypass_size_flag if bypass_size

auth_as := "Partner" if {
	partner_domain
} else := "Internal" if {
	authenticated
} else := "Internal" if {
	holds_authentication_flag
} else := "Anonymous"
