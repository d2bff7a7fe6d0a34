package mta_test

# --- end of headers: sender rights on P1 (MAIL FROM) and P2 (header From) -----------------------

anon_internet(mail_from, from) := with_message(with_mail(internet, mail_from), from, ["from"], 1)

anon_strict(mail_from, from) := with_message(with_mail(strict, mail_from), from, ["from"], 1)

alice(mail_from, from) := with_message(with_mail(with_auth(with_tls(client587), "alice", "success"), mail_from), from, ["from"], 1)

test_anonymous_outside_sender_any_sender if headers(anon_internet("<someone@gmail.test>", ["<someone@gmail.test>"])).decision == "continue"

test_anonymous_inside_sender_authoritative_domain_sender if headers(anon_internet("<alice@contoso.test>", ["<alice@contoso.test>"])).decision == "continue"

test_hardened_anonymous_inside_sender_denied if {
	d := headers(anon_strict("<alice@contoso.test>", ["<alice@contoso.test>"]))
	d.reason == "send_as_denied_anonymous"
	d.reply == {"code": 550, "enhanced": "5.7.1", "text": "Anonymous client does not have permissions to send as this sender"}
}

test_hardened_anonymous_inside_header_from_denied if {
	# P2: a clean envelope does not launder a spoofed header From.
	headers(anon_strict("<someone@gmail.test>", ["<alice@contoso.test>"])).reason == "send_as_denied_anonymous"
}

test_hardened_anonymous_local_literal_sender_denied if {
	# A literal naming this server is local mail at RCPT, so it is an inside sender too.
	headers(anon_strict("<someone@gmail.test>", ["<user@[192.0.2.10]>"])).reason == "send_as_denied_anonymous"
}

test_hardened_anonymous_outside_sender_ok if headers(anon_strict("<someone@gmail.test>", ["<someone@gmail.test>"])).decision == "continue"

test_internal_relay_domain_counts_as_inside if headers(anon_strict("<user@sub.contoso.test>", [])).reason == "send_as_denied_anonymous"

test_external_relay_domain_counts_as_outside if headers(anon_strict("<user@partner-relay.test>", [])).decision == "continue"

test_null_sender_skips_p1 if headers(anon_strict("<>", [])).decision == "continue"

test_user_own_address if headers(alice("<alice@contoso.test>", ["<Alice@CONTOSO.TEST>"])).decision == "continue"

test_user_send_as if headers(alice("<sales@contoso.test>", ["<sales@contoso.test>"])).decision == "continue"

test_user_cannot_send_as_colleague if {
	d := headers(alice("<alice@contoso.test>", ["<bob@contoso.test>"]))
	d.reason == "send_as_denied"
	d.reply == {"code": 550, "enhanced": "5.7.1", "text": "Client does not have permissions to send as this sender"}
}

test_user_cannot_send_as_outside_address_without_any_sender if headers(alice("<someone@gmail.test>", [])).reason == "send_as_denied"

test_invalid_header_from_denied if headers(anon_internet("<someone@gmail.test>", ["<not an address>"])).reason == "send_as_denied_anonymous"

test_partner_may_send_as_its_domain if {
	s := with_message(with_mail(with_cert(partner, true, {"fabrikam.test": true}), "<ceo@fabrikam.test>"), ["<ceo@fabrikam.test>"], [], 1)
	d := headers(s)
	d.decision == "continue"
	d.message_flags.auth_as == "Partner"
}

test_partner_may_not_send_as_other_domain if {
	s := with_message(with_mail(with_cert(partner, true, {"fabrikam.test": true}), "<ceo@fabrikam.test>"), ["<someone@gmail.test>"], [], 1)
	headers(s).reason == "send_as_denied"
}

test_externally_secured_sends_as_anyone if headers(with_message(with_mail(lan, "<alice@contoso.test>"), ["<bob@contoso.test>"], [], 1)).decision == "continue"

test_hop_count if {
	d := headers(with_message(with_mail(internet, "<>"), [], ["received"], 31))
	d.reason == "hop_count"
	d.reply.code == 554
}

test_header_size if {
	s := object.union(with_mail(strict, "<>"), {"message": {"from": [], "header_names": [], "received_count": 0, "header_size": 262145, "size": 0}})
	headers(s).reason == "header_size"
}

# --- header firewall ---------------------------------------------------------------------------------

names := ["received", "resent-from", "subject", "x-ms-exchange-organization-scl", "x-ms-exchange-forest-rules", "x-mta-policy-bypass-anti-spam"]

test_anonymous_keeps_routing_headers_strips_organization if {
	d := headers(with_message(with_mail(internet, "<>"), [], names, 1))
	d.header_actions == [
		{"name": "x-ms-exchange-forest-rules", "op": "remove"},
		{"name": "x-ms-exchange-organization-scl", "op": "remove"},
		{"name": "x-mta-policy-bypass-anti-spam", "op": "remove"},
	]
}

test_no_routing_right_strips_received_and_resent if {
	d := headers(with_message(with_mail(strict, "<>"), [], names, 1))
	{"op": "remove", "name": "received"} in d.header_actions
	{"op": "remove", "name": "resent-from"} in d.header_actions
	not {"op": "remove", "name": "subject"} in d.header_actions
}

test_exchange_server_keeps_everything if {
	s := with_message(with_mail(with_auth(with_tls(hub), "edge01", "success"), "<>"), [], names, 1)
	headers(s).header_actions == []
}

test_externally_secured_strips_organization_but_keeps_routing if {
	d := headers(with_message(with_mail(lan, "<>"), [], names, 1))
	not {"op": "remove", "name": "received"} in d.header_actions
	{"op": "remove", "name": "x-ms-exchange-organization-scl"} in d.header_actions
}

test_eom_repeats_sender_checks if {
	# An adapter that cannot stop at end of headers still refuses the spoof at end of message.
	d := eom(anon_strict("<alice@contoso.test>", ["<alice@contoso.test>"]))
	d.reason == "send_as_denied_anonymous"
}

test_eom_repeats_header_actions if {
	d := eom(with_message(with_mail(internet, "<>"), [], names, 1))
	count(d.header_actions) == 3
}

# --- message flags ---------------------------------------------------------------------------------

test_flags_anonymous if {
	f := headers(anon_internet("<>", [])).message_flags
	f == {"auth_as": "Anonymous", "bypass_anti_spam": false, "accept_authentication_flag": false, "bypass_message_size_limit": false}
}

test_flags_authenticated_user if {
	f := headers(alice("<alice@contoso.test>", [])).message_flags
	f.auth_as == "Internal"
	f.bypass_anti_spam == true
	f.accept_authentication_flag == false
}

test_flags_externally_secured if {
	f := headers(with_message(with_mail(lan, "<>"), [], [], 1)).message_flags
	f == {"auth_as": "Internal", "bypass_anti_spam": true, "accept_authentication_flag": true, "bypass_message_size_limit": true}
}
