package mta_test

# --- permission groups -> rights, exactly per Exchange's table (Microsoft Learn, "Receive connector permission groups") ---------

submit := "ms-Exch-SMTP-Submit"

any_recipient := "ms-Exch-SMTP-Accept-Any-Recipient"

any_sender := "ms-Exch-SMTP-Accept-Any-Sender"

authoritative_sender := "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"

auth_flag := "ms-Exch-SMTP-Accept-Authentication-Flag"

routing := "ms-Exch-Accept-Headers-Routing"

organization := "ms-Exch-Accept-Headers-Organization"

forest := "ms-Exch-Accept-Headers-Forest"

antispam := "ms-Exch-Bypass-Anti-Spam"

size := "ms-Exch-Bypass-Message-Size-Limit"

exch50 := "ms-Exch-SMTP-Accept-Exch50"

server_class := {submit, any_recipient, any_sender, authoritative_sender, auth_flag, routing, antispam, size, exch50}

test_anonymous_users if {
	d := connect(internet)
	d.principals == ["anonymous"]
	rights_of(d) == {submit, any_sender, authoritative_sender, routing}
}

test_exchange_users if {
	d := mail(with_auth(with_tls(client587), "alice", "success"))
	{"authenticated", "user:alice", "group:sales"} == {p | some p in d.principals}
	rights_of(d) == {submit, any_recipient, antispam, routing}
}

test_anonymous_has_no_rights_on_client_connector if connect(client587).rights == no_rights

test_auth_on_a_connector_without_basic_auth_is_not_honoured if {
	# Internet offers no AUTH: an authentication the MTA ran anyway (milter mode) counts for nothing.
	mail(with_auth(with_tls(internet), "alice", "success")).principals == ["anonymous"]
}

test_auth_before_tls_is_not_honoured_later if {
	# BasicAuthRequireTLS: a login made over cleartext does not make MAIL authenticated.
	d := mail(with_mail(with_auth(client587, "alice", "success"), "<alice@contoso.test>"))
	d.principals == ["anonymous"]
	d.reason == "submit_denied_anonymous"
}

test_auth_with_a_mechanism_the_connector_does_not_offer_is_not_honoured if {
	s := object.union(with_tls(client587), {"auth": {"mechanism": "CRAM-MD5", "login": "alice", "result": "success"}})
	mail(with_mail(s, "<alice@contoso.test>")).principals == ["anonymous"]
}

test_authenticated_user_loses_anonymous_rights if {
	# Strict Internet grants AnonymousUsers only; an authenticated login is no longer anonymous.
	not "anonymous" in mail(with_mail(with_auth(with_tls(client587), "alice", "success"), "<alice@contoso.test>")).principals
}

test_externally_secured if {
	d := connect(lan)
	d.principals == ["externally_secured"]
	rights_of(d) == server_class
}

test_exchange_servers_group_member if {
	d := mail(with_auth(with_tls(hub), "edge01", "success"))
	"exchange_servers" in d.principals
	rights := rights_of(d)
	server_class | {organization, forest} == rights & (server_class | {organization, forest})
	"ms-Exch-SMTP-Accept-XProxyFrom" in rights
}

test_exchange_legacy_servers if {
	d := mail(with_auth(with_tls(hub), "legacy01", "success"))
	"exchange_legacy_servers" in d.principals
	rights_of(d) == server_class
}

test_plain_user_on_server_connector_has_no_rights if mail(with_auth(with_tls(hub), "alice", "success")).rights == no_rights

test_partner_after_domain_secure if {
	s := with_mail(with_cert(partner, true, {"mx.fabrikam.test": true, "fabrikam.test": true, "test": true}), "<ceo@fabrikam.test>")
	d := mail(s)
	d.decision == "continue"
	d.principals == ["partner"]
	rights_of(d) == {submit, routing}
}

test_partner_connector_anonymous_has_nothing if connect(partner).rights == no_rights

# --- explicit ACEs: allow adds, deny always wins --------------------------------------------------

test_explicit_allow_ace if any_recipient in rights_of(connect(scanner))

test_explicit_allow_keeps_group_rights if submit in rights_of(connect(scanner))

test_explicit_deny_wins_over_group_allow if {
	d := mail(with_auth(with_tls(client587), "bob", "success"))
	not submit in rights_of(d)
	any_recipient in rights_of(d)
}

test_explicit_deny_on_anonymous if {
	rights := rights_of(connect(strict))
	not authoritative_sender in rights
	not routing in rights
	any_sender in rights
}

# --- usage defaults -----------------------------------------------------------------------------

test_client_usage_defaults if {
	c := cfg.connectors.Client
	c.auth == {"none": false, "tls": true, "basic": true, "basic_require_tls": true, "external_authoritative": false}
	c.message_rate_limit == 5
	c.max_message_size == 37748736
	c.max_recipients_per_message == 200
	object.keys(c.acl) == {"authenticated", "group:blocked"}
}

test_internet_usage_defaults if {
	c := cfg.connectors.Internet
	c.auth.tls
	not c.auth.basic
	object.keys(c.acl) == {"anonymous"}
	c.message_rate_limit == null
}

test_internal_usage_defaults if {
	c := cfg.connectors.Hub
	object.keys(c.acl) == {"exchange_servers", "externally_secured", "exchange_legacy_servers"}
	c.auth.basic
}

test_partner_usage_defaults if {
	c := cfg.connectors.Partner
	object.keys(c.acl) == {"partner"}
	c.domain_secure
}

test_custom_usage_defaults_grant_nothing_by_themselves if {
	# Scanner is custom: AnonymousUsers was added explicitly; nothing else is granted.
	object.keys(cfg.connectors.Scanner.acl) == {"anonymous"}
}
