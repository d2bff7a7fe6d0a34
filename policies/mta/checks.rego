# Per-stage checks, in Exchange's order
#
# Each stage collects the checks that fail as {"order", "reason"}; the lowest order decides
# (Exchange 2016/2019 receive connectors: MAIL = RequireTLS -> rate -> Domain Secure -> Submit
# -> SIZE; RCPT = recipient count -> relay). Every failing check is listed in `explain` output.
# Orders are unique per stage.
package mta

# --- every stage --------------------------------------------------------------------------------

common_failures contains {"order": 0, "reason": "no_connector"} if not conn

# Counters the adapter did not send are zero.
counter(name) := object.get(object.get(input, "counters", {}), name, 0)

# --- CONNECT ------------------------------------------------------------------------------------

connect_failures contains f if some f in common_failures

connect_failures contains {"order": 1, "reason": "connection_limit"} if {
	is_number(conn.max_inbound_connection)
	counter("connections_total") > conn.max_inbound_connection
}

connect_failures contains {"order": 2, "reason": "connection_limit_source"} if {
	is_number(conn.max_inbound_connection_per_source)
	counter("connections_from_source") > conn.max_inbound_connection_per_source
}

# --- EHLO ---------------------------------------------------------------------------------------

ehlo_failures contains f if some f in common_failures

ehlo_failures contains {"order": 1, "reason": "ehlo_domain_required"} if {
	conn.require_ehlo_domain
	not input.helo.present
}

ehlo_failures contains {"order": 2, "reason": "ehlo_domain_invalid"} if {
	conn.require_ehlo_domain
	input.helo.present
	not input.helo.valid
}

# --- AUTH (the adapter verified the credentials; this decides what they are worth) -------------

auth_failures contains f if some f in common_failures

auth_failures contains {"order": 1, "reason": "auth_not_enabled"} if {
	conn
	not conn.auth.basic
}

auth_failures contains {"order": 2, "reason": "auth_requires_tls"} if {
	conn.auth.basic
	conn.auth.basic_require_tls
	not input.tls.active
}

auth_failures contains {"order": 3, "reason": "auth_mech_unavailable"} if {
	conn.auth.basic
	not input.auth.mechanism in conn.sasl
}

auth_failures contains {"order": 4, "reason": "auth_tempfail"} if input.auth.result == "tempfail"

# A login that lacks Submit counts as a failed logon, as in Exchange.
default logon_failure := false

logon_failure if logon_failed

logon_failed if input.auth.result == "failure"

logon_failed if {
	authenticated
	not holds_submit
}

# Valid credentials for a login the configuration does not know (identities.unlisted_logins).
unknown_identity if current_session.unknown_identity == true

logon_failed if unknown_identity

auth_failures contains {"order": 5, "reason": "auth_too_many_failures"} if {
	logon_failed
	conn.max_logon_failures > 0
	counter("logon_failures") + 1 > conn.max_logon_failures
}

auth_failures contains {"order": 6, "reason": "auth_failed"} if input.auth.result == "failure"

auth_failures contains {"order": 7, "reason": "auth_unknown_identity"} if unknown_identity

auth_failures contains {"order": 8, "reason": "auth_no_submit"} if {
	authenticated
	not holds_submit
}

# --- MAIL FROM ----------------------------------------------------------------------------------

mail_failures contains f if some f in common_failures

mail_failures contains {"order": 1, "reason": "require_tls"} if {
	conn.require_tls
	not input.tls.active
}

# The MTA authenticated the client in a way this connector does not accept (session.rego).
mail_failures contains {"order": 2, "reason": current_session.mta_auth} if is_string(current_session.mta_auth)

mail_failures contains {"order": 3, "reason": "rate_limit"} if {
	is_number(conn.message_rate_limit)
	not bypass_size
	counter("messages_last_minute") >= conn.message_rate_limit
}

mail_failures contains {"order": 4, "reason": "sender_invalid"} if {
	not input.mail.address.null
	input.mail.address.invalid
}

mail_failures contains {"order": 5, "reason": "address_not_ascii"} if {
	input.mail.address.non_ascii
	not input.mail.smtputf8
}

# Domain Secure: the sender's domain demands mutual TLS, and this session does not prove it.
domain_secure_sender if {
	conn.domain_secure
	not authenticated
	data.config.server.domain_secure[input.mail.address.domain]
}

mail_failures contains {"order": 6, "reason": "partner_tls_required"} if {
	domain_secure_sender
	not input.tls.active
}

mail_failures contains {"order": 7, "reason": "partner_cert_missing"} if {
	domain_secure_sender
	input.tls.active
	not input.tls.client_cert.present
}

mail_failures contains {"order": 8, "reason": "partner_cert_invalid"} if {
	domain_secure_sender
	input.tls.client_cert.present
	not partner_domain
}

# Exchange words its refusals differently for the anonymous principal and everyone else
# (authenticated users, partners, externally secured servers).
anonymous_session if "anonymous" in principals

mail_failures contains {"order": 9, "reason": "submit_denied_anonymous"} if {
	not holds_submit
	anonymous_session
}

mail_failures contains {"order": 10, "reason": "submit_denied"} if {
	not holds_submit
	not anonymous_session
}

# Exchange: Bypass-Message-Size-Limit and Accept-Headers-Organization skip the SIZE= check.
size_exempt if bypass_size

size_exempt if holds_headers_organization

mail_failures contains {"order": 11, "reason": "message_size"} if {
	is_number(conn.max_message_size)
	not size_exempt
	input.mail.size > conn.max_message_size
}

# --- RCPT TO ------------------------------------------------------------------------------------

rcpt_failures contains f if some f in common_failures

rcpt_failures contains {"order": 1, "reason": "recipient_invalid"} if input.rcpt.invalid

# RCPT TO:<> names no mailbox.
rcpt_failures contains {"order": 1, "reason": "recipient_invalid"} if input.rcpt.null

rcpt_failures contains {"order": 2, "reason": "address_not_ascii"} if {
	input.rcpt.non_ascii
	not input.mail.smtputf8
}

rcpt_failures contains {"order": 3, "reason": "too_many_recipients"} if {
	is_number(conn.max_recipients_per_message)
	not bypass_size
	object.get(input, "accepted_rcpt_count", 0) >= conn.max_recipients_per_message
}

rcpt_failures contains {"order": 4, "reason": "routing_address"} if {
	routed(input.rcpt)
	not holds_any_recipient
}

rcpt_failures contains {"order": 5, "reason": "relay_denied"} if {
	not accepted_recipient(input.rcpt)
	not holds_any_recipient
}

# --- end of headers -----------------------------------------------------------------------------

headers_failures contains f if some f in common_failures

# A header field name that is not RFC 5322 ftext, or a From / Sender / Resent-From /
# Resent-Sender that is not a clean mailbox list: refused, never guessed at.
headers_failures contains {"order": 1, "reason": "header_invalid"} if input.message.invalid

headers_failures contains {"order": 2, "reason": "hop_count"} if {
	input.message.received_count > conn.max_hop_count
}

headers_failures contains {"order": 3, "reason": "header_size"} if {
	is_number(conn.max_header_size)
	not bypass_size
	input.message.header_size > conn.max_header_size
}

# P1 (MAIL FROM, unless null) and P2 (every mailbox of From, Sender, Resent-From and
# Resent-Sender) must each be allowed.
senders contains input.mail.address if not input.mail.address.null

senders contains address if some address in input.message.from

sender_denied contains address.key if {
	some address in senders
	not sender_allowed(address)
}

headers_failures contains {"order": 4, "reason": "send_as_denied_anonymous"} if {
	count(sender_denied) > 0
	anonymous_session
}

headers_failures contains {"order": 5, "reason": "send_as_denied"} if {
	count(sender_denied) > 0
	not anonymous_session
}

# Exchange VerifySenderOkForClient: Any-Sender covers outside senders only; inside senders need
# Authoritative-Domain-Sender, a matching partner domain, or the user's own / send-as address.
sender_allowed(address) if {
	not address.invalid
	holds_any_sender
	not internal_sender(address)
}

sender_allowed(address) if {
	not address.invalid
	holds_authoritative_sender
	internal_sender(address)
}

sender_allowed(address) if {
	not address.invalid
	address.domain == partner_domain
}

sender_allowed(address) if {
	not address.invalid
	identity.addresses[address.key]
}

sender_allowed(address) if {
	not address.invalid
	identity.send_as[address.key]
}

sender_allowed(address) if {
	not address.invalid
	authenticated
	not identity
	address.key == login
}

# --- end of message -----------------------------------------------------------------------------

# End of message repeats the end-of-headers checks, so an adapter that cannot stop at end of
# headers still refuses what they refuse.
eom_failures contains f if some f in headers_failures

eom_failures contains {"order": 6, "reason": "message_size"} if {
	is_number(conn.max_message_size)
	not size_exempt
	input.message.size > conn.max_message_size
}
