# The session document (mta/session): computed from the restricted input only, and what the
# stages make of it, including AUTH the MTA ran.
package mta_test

session_doc_of(i) := d if {
	d := data.mta.session with input as i with data.config as cfg
}

with_mta_auth(s, user) := object.union(s, {"auth": {"mechanism": "CRAM-MD5", "login": user, "result": "success", "mta": true}})

test_session_document_of_an_anonymous_internet_client if {
	d := session_doc_of(internet)
	d.connector == "Internet"
	d.principals == ["anonymous"]
	d.authenticated == false
	d.login == null
	d.identity == null
	d.mta_auth == null
	d.selected_by == {"binding": "0.0.0.0:25", "range": "0.0.0.0-255.255.255.255"}
}

test_session_document_of_an_authenticated_user if {
	d := session_doc_of(with_auth(with_tls(client587), "alice", "success"))
	d.authenticated == true
	d.login == "alice"
	d.identity == "alice"
	d.principals == ["authenticated", "group:sales", "user:alice"]
	substring(d.rights, 0, 1) == "1" # ms-Exch-SMTP-Submit is the first right
}

test_session_document_without_a_connector if {
	d := session_doc_of(session("198.51.100.7", "192.0.2.99", 26))
	d.connector == null
	d.selected_by == null
}

test_unknown_identity_in_the_session_document if {
	d := data.mta.session with input as with_auth(with_tls(client587), "mallory", "success") with data.config as cfg_reject
	d.unknown_identity == true
	d.authenticated == false
}

test_partner_rights_only_where_domain_secure_can_apply if {
	is_string(session_doc_of(partner).partner_rights)
	session_doc_of(internet).partner_rights == null
	session_doc_of(lan).partner_rights == null # externally secured: never a partner
}

test_mta_auth_counts_with_any_mechanism_over_tls if {
	d := mail(with_mail(with_mta_auth(with_tls(client587), "alice"), "<alice@contoso.test>"))
	d.decision == "continue"
	{"authenticated", "user:alice", "group:sales"} == {p | some p in d.principals}
}

test_mta_auth_without_tls_where_basic_auth_requires_it if {
	d := mail(with_mail(with_mta_auth(client587, "alice"), "<alice@contoso.test>"))
	d.reason == "mta_auth_requires_tls"
	d.decision == "reject"
	session_doc_of(with_mta_auth(client587, "alice")).mta_auth == "mta_auth_requires_tls"
}

test_mta_auth_where_the_connector_offers_none if {
	mail(with_mail(with_mta_auth(with_tls(internet), "alice"), "<someone@gmail.test>")).reason == "mta_auth_not_enabled"
}

test_mta_auth_of_an_unlisted_login if {
	d := mail_reject(with_mail(with_mta_auth(with_tls(client587), "mallory"), "<alice@contoso.test>"))
	d.reason == "mta_auth_unknown_identity"
}

test_a_stage_reads_the_cached_document_not_the_auth_it_is_given if {
	# With input.session present the stage trusts it: an input.auth the document was not
	# computed from changes nothing.
	doc := object.remove(session_doc_of(internet), ["selected_by"])
	i := object.union(with_mail(with_auth(with_tls(internet), "alice", "success"), "<someone@gmail.test>"), {"session": doc})
	d := mail(i)
	d.decision == "continue"
	not d.principals # cached mode: the engine holds principals and rights
	not d.reply # cached mode: the engine renders the catalogue reply
}
