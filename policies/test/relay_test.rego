package mta_test

# --- RCPT: relay = Accept-Any-Recipient OR accepted domain; routing tricks refused -----------------

accepted(raw) if rcpt(with_rcpt(internet, raw)).decision == "continue"

denied(raw, reason) if {
	d := rcpt(with_rcpt(internet, raw))
	d.reason == reason
	d.decision == "reject"
}

test_authoritative_domain if {
	d := rcpt(with_rcpt(internet, "<user@contoso.test>"))
	d.decision == "continue"
	d.recipient.accepted_domain_type == "authoritative"
	d.reply == {"code": 250, "enhanced": "2.1.5", "text": "Recipient OK"}
}

test_case_and_trailing_dot_normalised if accepted("<user@contoso.test.>")

test_wildcard_subdomain if rcpt(with_rcpt(internet, "<user@sub.contoso.test>")).recipient.accepted_domain_type == "internal_relay"

test_closest_wildcard_wins if rcpt(with_rcpt(internet, "<user@x.deep.contoso.test>")).recipient.accepted_domain_type == "external_relay"

test_external_relay_domain if rcpt(with_rcpt(internet, "<user@partner-relay.test>")).recipient.accepted_domain_type == "external_relay"

test_idn_unicode_matches_a_label if accepted("<user@xn--bcher-kva.test>")

test_foreign_domain_relay_denied if {
	d := rcpt(with_rcpt(internet, "<user@victim.test>"))
	d.reason == "relay_denied"
	d.reply == {"code": 550, "enhanced": "5.7.54", "text": "SMTP; Unable to relay recipient in non-accepted domain"}
	d.recipient.accepted_domain_type == null
}

test_foreign_domain_trailing_dot if denied("<user@victim.test.>", "relay_denied")

test_suffix_trick_is_not_a_subdomain if denied("<user@contoso.test.evil.test>", "relay_denied")

test_wildcard_matches_label_boundary_only if denied("<user@evilcontoso.test>", "relay_denied")

test_percent_hack if denied("<relaytest%victim.test@contoso.test>", "routing_address")

test_source_route_to_foreign_domain if denied("<@contoso.test:relaytest@victim.test>", "routing_address")

test_source_route_to_local_domain if denied("<@contoso.test,@relay.test:user@contoso.test>", "routing_address")

test_quoted_at if denied("<\"relaytest@victim.test\"@contoso.test>", "routing_address")

test_double_at if denied("<relaytest@victim.test@contoso.test>", "routing_address")

test_bang_path if denied("<victim.test!relaytest@contoso.test>", "routing_address")

test_foreign_ip_literal if denied("<user@[198.51.100.1]>", "routing_address")

test_own_ip_literal if {
	d := rcpt(with_rcpt(internet, "<user@[192.0.2.10]>"))
	d.decision == "continue"
	d.recipient.accepted_domain_type == "local_literal"
}

test_invalid_recipient if denied("<not an address>", "recipient_invalid")

test_null_recipient if denied("<>", "recipient_invalid")

test_non_ascii_recipient_without_smtputf8 if {
	d := rcpt(with_rcpt(internet, "<user@bücher.test>"))
	d.reason == "address_not_ascii"
	d.reply.code == 553
}

test_routing_reported_in_recipient_facts if rcpt(with_rcpt(internet, "<relaytest%victim.test@contoso.test>")).recipient.routed

# --- with Accept-Any-Recipient ------------------------------------------------------------------------

test_anonymous_relay_connector_relays if rcpt(with_rcpt(scanner, "<user@victim.test>")).decision == "continue"

test_relay_right_allows_routing_forms if rcpt(with_rcpt(scanner, "<relaytest%victim.test@contoso.test>")).decision == "continue"

test_authenticated_user_relays if {
	rcpt(with_rcpt(with_auth(with_tls(client587), "alice", "success"), "<user@victim.test>")).decision == "continue"
}

test_externally_secured_relays if rcpt(with_rcpt(lan, "<user@victim.test>")).decision == "continue"

# --- recipient limit (counted on accepted recipients; bypassed by Bypass-Message-Size-Limit) -------

test_too_many_recipients if {
	d := rcpt(object.union(with_rcpt(strict, "<user@contoso.test>"), {"accepted_rcpt_count": 2}))
	d.reason == "too_many_recipients"
	d.decision == "tempfail"
	d.reply == {"code": 452, "enhanced": "4.5.3", "text": "Too many recipients"}
}

test_recipient_limit_not_reached if rcpt(object.union(with_rcpt(strict, "<user@contoso.test>"), {"accepted_rcpt_count": 1})).decision == "continue"

test_recipient_limit_bypassed if rcpt(object.union(with_rcpt(lan, "<user@contoso.test>"), {"accepted_rcpt_count": 100000})).decision == "continue"

# --- dialects and overrides -----------------------------------------------------------------------

test_rfc_dialect_relay_reply if {
	d := rcpt(with_rcpt(with_tls(backend), "<user@victim.test>"))
	d.reply == {"code": 554, "enhanced": "5.7.1", "text": "Relay access denied"}
}

test_connector_reply_override if {
	d := rcpt(with_rcpt(strict, "<user@victim.test>"))
	d.reason == "relay_denied"
	d.reply == {"code": 550, "enhanced": "5.7.1", "text": "Relaying denied"}
}

# --- extension rules (package mta.ext) only tighten, after the built-in checks --------------------

ext_deny := {{"stage": "rcpt", "reason": "blocked_recipient", "reply": {"code": 550, "enhanced": "5.7.1", "text": "Recipient blocked"}}}

test_extension_denies_after_builtins if {
	d := rcpt(with_rcpt(internet, "<user@contoso.test>")) with data.mta.ext.deny as ext_deny
	d.reason == "blocked_recipient"
	d.decision == "reject"
	d.reply.text == "Recipient blocked"
}

test_builtin_check_wins_over_extension if {
	d := rcpt(with_rcpt(internet, "<user@victim.test>")) with data.mta.ext.deny as ext_deny
	d.reason == "relay_denied"
}

test_extension_discard if {
	discard := {{"stage": "rcpt", "reason": "relay_denied", "decision": "discard"}}
	d := rcpt(with_rcpt(internet, "<user@contoso.test>")) with data.mta.ext.deny as discard
	d.decision == "discard"
}

test_extension_for_other_stage_ignored if rcpt(with_rcpt(internet, "<user@contoso.test>")).decision == "continue" with data.mta.ext.deny as {{"stage": "mail", "reason": "x"}}

test_two_extension_denies_do_not_conflict if {
	two := {
		{"stage": "rcpt", "reason": "b_rule", "reply": {"code": 550, "enhanced": "5.7.1", "text": "B"}},
		{"stage": "rcpt", "reason": "a_rule", "reply": {"code": 450, "enhanced": "4.7.1", "text": "A"}},
	}
	d := rcpt(object.union(with_rcpt(internet, "<user@contoso.test>"), {"explain": true})) with data.mta.ext.deny as two
	d.reason == "a_rule"
	d.checks == [[1000, "a_rule"], [1001, "b_rule"]]
}

test_extension_with_success_reply_is_undefined_not_accept if {
	bad := {{"stage": "rcpt", "reason": "oops", "reply": {"code": 250, "enhanced": "2.0.0", "text": "fine"}}}
	not rcpt(with_rcpt(internet, "<user@contoso.test>")) with data.mta.ext.deny as bad
}

test_extension_with_unknown_reason_and_no_reply_is_undefined if {
	not rcpt(with_rcpt(internet, "<user@contoso.test>")) with data.mta.ext.deny as {{"stage": "rcpt", "reason": "no_such_reason"}}
}
