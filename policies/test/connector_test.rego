package mta_test

# --- connector selection: most specific remote range, then specific local IP ---------------------

test_internet_client_gets_internet_connector if connect(internet).connector == "Internet"

test_single_ip_range_beats_all if connect(scanner).connector == "Scanner"

test_dash_range_inside if connect(session("198.18.7.15", "192.0.2.99", 25)).connector == "Scanner"

test_dash_range_outside if connect(session("198.18.7.31", "192.0.2.99", 25)).connector == "Internet"

test_cidr_range if connect(lan).connector == "LAN Servers"

test_partner_range if connect(partner).connector == "Partner"

test_specific_local_ip_beats_wildcard_on_equal_range if connect(backend).connector == "Backend NIC"

test_more_specific_remote_beats_specific_local_ip if {
	connect(session("198.18.5.10", "192.0.2.10", 25)).connector == "Scanner"
}

test_ipv6_client_on_ipv6_binding if connect(session("2001:db8::1", "2001:db8::25", 25)).connector == "Internet"

test_ipv6_client_on_submission_port if connect(session("2001:db8::1", "2001:db8::25", 587)).connector == "Client"

test_ipv4_mapped_client_matches_ipv4_ranges if {
	connect(session("::ffff:198.51.100.7", "192.0.2.99", 25)).connector == "Internet"
}

test_port_selects_connector if connect(client587).connector == "Client"

test_no_connector_on_unbound_port if {
	d := connect(session("198.51.100.7", "192.0.2.99", 26))
	d.connector == null
	d.decision == "disconnect"
	d.reason == "no_connector"
	d.reply.code == 554
}

test_a_connector_named_in_the_input_is_ignored if {
	# The connector is selected from the endpoints at every stage; nothing else can move a
	# session onto another connector's rights.
	ehlo(with_connector(internet, "Scanner")).connector == "Internet"
	rcpt(with_rcpt(with_connector(internet, "Scanner"), "<user@victim.test>")).reason == "relay_denied"
}

test_explain_shows_selection if {
	d := connect(object.union(scanner, {"explain": true}))
	d.selected_by == {"binding": "0.0.0.0:25", "range": "198.18.5.10"}
}

test_no_explain_fields_by_default if not connect(scanner).selected_by

# --- connection limits ------------------------------------------------------------------------------

test_connect_ok_banner if {
	d := connect(internet)
	d.decision == "continue"
	d.reply == {"code": 220, "enhanced": "", "text": "{fqdn} ESMTP MAIL Service ready"}
}

test_per_source_limit if {
	d := connect(with_counters(strict, {"connections_from_source": 4}))
	d.reason == "connection_limit_source"
	d.decision == "disconnect"
	d.reply.code == 421
}

test_per_source_limit_at_limit_is_fine if connect(with_counters(strict, {"connections_from_source": 3})).decision == "continue"

test_total_limit if connect(with_counters(internet, {"connections_total": 5001})).reason == "connection_limit"
