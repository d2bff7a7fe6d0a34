package mta_test

# --- EHLO: what to advertise ---------------------------------------------------------------------

test_ehlo_client_before_tls_hides_auth if {
	a := ehlo(client587).advertise
	a.starttls == true
	a.auth == []
	a.size == 37748736
}

test_ehlo_client_after_tls_offers_basic_auth if {
	a := ehlo(with_tls(client587)).advertise
	a.starttls == false
	a.auth == ["PLAIN", "LOGIN"]
}

test_ehlo_internet_offers_no_auth if ehlo(with_tls(internet)).advertise.auth == []

test_ehlo_partner_requests_client_certificate if ehlo(partner).advertise.client_certificate == "request"

test_ehlo_require_tls_advertised if ehlo(backend).advertise.require_tls == true

test_ehlo_domain_required if {
	d := ehlo(strict)
	d.reason == "ehlo_domain_required"
	d.reply == {"code": 501, "enhanced": "5.0.0", "text": "EHLO requires domain address"}
}

test_ehlo_domain_invalid if ehlo(object.union(strict, {"helo": {"name": "-bad-", "present": true, "valid": false}})).reason == "ehlo_domain_invalid"

test_ehlo_domain_ok if ehlo(object.union(strict, {"helo": {"name": "mx.example.test", "present": true, "valid": true}})).decision == "continue"

test_ehlo_without_domain_allowed_by_default if ehlo(internet).decision == "continue"

# --- AUTH ------------------------------------------------------------------------------------------

test_auth_before_tls_refused_exchange_dialect if {
	d := auth(with_auth(client587, "alice", "success"))
	d.reason == "auth_requires_tls"
	d.decision == "reject"
	d.reply == {"code": 504, "enhanced": "5.7.4", "text": "Unrecognized authentication type"}
}

test_auth_success if {
	d := auth(with_auth(with_tls(client587), "alice", "success"))
	d.decision == "continue"
	d.reply.code == 235
	"user:alice" in d.principals
}

test_auth_unknown_mechanism if {
	s := object.union(with_tls(client587), {"auth": {"mechanism": "CRAM-MD5", "login": "alice", "result": "success"}})
	auth(s).reason == "auth_mech_unavailable"
}

test_auth_not_enabled_on_internet if auth(with_auth(with_tls(internet), "alice", "success")).reason == "auth_not_enabled"

test_auth_bad_credentials if {
	d := auth(with_auth(with_tls(client587), "alice", "failure"))
	d.reason == "auth_failed"
	d.reply == {"code": 535, "enhanced": "5.7.3", "text": "Authentication unsuccessful"}
	"anonymous" in d.principals
}

test_auth_tempfail if {
	d := auth(with_auth(with_tls(client587), "alice", "tempfail"))
	d.reason == "auth_tempfail"
	d.decision == "tempfail"
}

test_auth_too_many_failures_disconnects if {
	d := auth(with_counters(with_auth(with_tls(client587), "alice", "failure"), {"logon_failures": 3}))
	d.reason == "auth_too_many_failures"
	d.decision == "disconnect"
	d.reply.code == 421
}

test_auth_failures_below_limit if auth(with_counters(with_auth(with_tls(client587), "alice", "failure"), {"logon_failures": 2})).reason == "auth_failed"

test_auth_without_submit_is_a_failed_logon if {
	d := auth(with_auth(with_tls(client587), "bob", "success"))
	d.reason == "auth_no_submit"
	d.reply.code == 535
}

test_unlisted_login_refused_by_default if {
	d := auth_reject(with_auth(with_tls(client587), "alice@alias.test", "success"))
	d.reason == "auth_unknown_identity"
	d.reply == {"code": 535, "enhanced": "5.7.3", "text": "Authentication unsuccessful"}
	d.principals == ["anonymous"]
}

test_unlisted_login_counts_as_a_failed_logon if {
	s := with_counters(with_auth(with_tls(client587), "alice@alias.test", "success"), {"logon_failures": 3})
	auth_reject(s).reason == "auth_too_many_failures"
}

test_unlisted_login_is_anonymous_at_mail if {
	mail_reject(with_mail(with_auth(with_tls(client587), "alice@alias.test", "success"), "<alice@contoso.test>")).reason == "submit_denied_anonymous"
}

test_listed_login_unaffected_by_unlisted_setting if auth_reject(with_auth(with_tls(client587), "alice", "success")).decision == "continue"

test_auth_unknown_identity_is_authenticated_user if {
	d := auth(with_auth(with_tls(client587), "carol@contoso.test", "success"))
	d.decision == "continue"
	{p | some p in d.principals} == {"authenticated", "user:carol@contoso.test"}
}

# --- MAIL FROM --------------------------------------------------------------------------------------

test_mail_require_tls_rfc_dialect if {
	d := mail(with_mail(backend, "<someone@gmail.test>"))
	d.reason == "require_tls"
	d.reply == {"code": 530, "enhanced": "5.7.0", "text": "Must issue a STARTTLS command first"}
	d.decision == "reject"
}

test_mail_require_tls_met if mail(with_mail(with_tls(backend), "<someone@gmail.test>")).decision == "continue"

test_mail_anonymous_without_submit if {
	d := mail(with_mail(with_tls(client587), "<alice@contoso.test>"))
	d.reason == "submit_denied_anonymous"
	d.decision == "disconnect"
	d.reply == {"code": 530, "enhanced": "5.7.1", "text": "Client was not authenticated"}
}

test_mail_authenticated_without_submit if {
	d := mail(with_mail(with_auth(with_tls(client587), "bob", "success"), "<bob@contoso.test>"))
	d.reason == "submit_denied"
	d.reply == {"code": 550, "enhanced": "5.7.1", "text": "Client does not have permissions to submit to this server"}
}

test_mail_rate_limit if {
	s := with_counters(with_mail(with_auth(with_tls(client587), "alice", "success"), "<alice@contoso.test>"), {"messages_last_minute": 5})
	d := mail(s)
	d.reason == "rate_limit"
	d.decision == "disconnect"
	d.reply.enhanced == "4.4.2"
}

test_mail_rate_below_limit if {
	s := with_counters(with_mail(with_auth(with_tls(client587), "alice", "success"), "<alice@contoso.test>"), {"messages_last_minute": 4})
	mail(s).decision == "continue"
}

test_mail_size_over_limit if {
	d := mail(with_size(internet, "<someone@gmail.test>", 37748737))
	d.reason == "message_size"
	d.reply == {"code": 552, "enhanced": "5.3.4", "text": "Message size exceeds fixed maximum message size"}
}

test_mail_size_at_limit if mail(with_size(internet, "<someone@gmail.test>", 37748736)).decision == "continue"

test_mail_size_bypassed_by_right if mail(with_size(lan, "<someone@gmail.test>", 999999999)).decision == "continue"

test_mail_invalid_sender if mail(with_mail(internet, "<not an address>")).reason == "sender_invalid"

test_mail_null_sender_ok if mail(with_mail(internet, "<>")).decision == "continue"

test_mail_non_ascii_needs_smtputf8 if mail(with_mail(internet, "<user@bücher.test>")).reason == "address_not_ascii"

test_mail_non_ascii_with_smtputf8 if {
	s := object.union(internet, {"mail": {"address": data.test.fixtures.addresses["<user@bücher.test>"], "smtputf8": true}})
	mail(s).decision == "continue"
}

test_require_tls_checked_before_submit if {
	# Exchange order: RequireTLS, then rate, then Submit; explain lists every failing check.
	d := mail(object.union(with_mail(backend, "<>"), {"explain": true}))
	d.reason == "require_tls"
	d.checks == [[1, "require_tls"]]
}

# --- Domain Secure partners at MAIL FROM --------------------------------------------------------------

test_partner_needs_tls if {
	d := mail(with_mail(partner, "<ceo@fabrikam.test>"))
	d.reason == "partner_tls_required"
	d.reply == {"code": 454, "enhanced": "4.7.0", "text": "Temporary authentication failure"}
}

test_partner_needs_certificate if mail(with_mail(with_tls(partner), "<ceo@fabrikam.test>")).reason == "partner_cert_missing"

test_partner_unverified_certificate if {
	d := mail(with_mail(with_cert(partner, false, {"fabrikam.test": true}), "<ceo@fabrikam.test>"))
	d.reason == "partner_cert_invalid"
	d.reply.enhanced == "4.7.5"
}

test_partner_certificate_for_other_domain if {
	mail(with_mail(with_cert(partner, true, {"mx.tailspin.test": true}), "<ceo@fabrikam.test>")).reason == "partner_cert_invalid"
}

test_partner_non_secure_sender_stays_anonymous if {
	d := mail(with_mail(partner, "<someone@gmail.test>"))
	d.reason == "submit_denied_anonymous"
}

# --- end of message -------------------------------------------------------------------------------

test_eom_accepts if {
	d := eom(with_message(internet, [], ["subject"], 1))
	d.decision == "accept"
	d.reply == {"code": 250, "enhanced": "2.6.0", "text": "Queued mail for delivery"}
}

test_eom_size if {
	s := object.union(with_message(strict, [], [], 0), {"message": {"size": 1048577, "from": [], "header_names": [], "received_count": 0, "header_size": 10}})
	eom(s).reason == "message_size"
}

test_eom_size_bypassed if {
	s := object.union(with_message(lan, [], [], 0), {"message": {"size": 999999999, "from": [], "header_names": [], "received_count": 0, "header_size": 10}})
	eom(s).decision == "accept"
}

test_checks_list_every_failure_in_order if {
	s := object.union(with_size(with_tls(client587), "<someone@gmail.test>", 99999999999), {"explain": true})
	d := mail(s)
	d.reason == "submit_denied_anonymous"
	d.checks == [[9, "submit_denied_anonymous"], [11, "message_size"]]
}
