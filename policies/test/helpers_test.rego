# Helpers for the policy unit tests. Inputs are built from data.fixtures (policies/test/
# fixtures.json, generated from test/fixtures/policy.yaml by the real engine code), so the tests
# run on exactly the data and input shapes the engine produces.
package mta_test

cfg := data.test.fixtures.config

# A session from `client` (a fixtures client IP) to local `ip`:`port`, cleartext, anonymous,
# shaped as engine/input.ts shapes it (absent = false / zero).
session(client, ip, port) := {"connection": {"local": {"ip": ip, "port": port}, "remote": data.test.fixtures.clients[client]}}

with_connector(s, name) := object.union(s, {"connector": name})

with_tls(s) := object.union(s, {"tls": {"active": true, "version": "TLSv1.3"}})

with_cert(s, verified, names) := object.union(s, {"tls": {
	"active": true,
	"version": "TLSv1.3",
	"client_cert": {"present": true, "verified": verified, "names": names},
}})

with_auth(s, user, result) := object.union(s, {"auth": {"mechanism": "PLAIN", "login": user, "result": result}})

with_mail(s, raw) := object.union(s, {"mail": {"address": data.test.fixtures.addresses[raw]}})

with_size(s, raw, size) := object.union(s, {"mail": {"address": data.test.fixtures.addresses[raw], "size": size}})

with_rcpt(s, raw) := object.union(s, {"rcpt": data.test.fixtures.addresses[raw]})

with_counters(s, counters) := object.union(s, {"counters": counters})

with_message(s, from, names, received) := object.union(s, {"message": {
	"from": [data.test.fixtures.addresses[f] | some f in from],
	"header_names": names,
	"received_count": received,
	"header_size": 100,
	"size": 1000,
}})

# The fixture config with identities.unlisted_logins: reject.
cfg_reject := object.union(cfg, {"unlisted_logins": "reject"})

auth_reject(i) := d if {
	d := data.mta.auth with input as i with data.config as cfg_reject
}

mail_reject(i) := d if {
	d := data.mta.mail with input as i with data.config as cfg_reject
}

# The decision's rights string as a set of names.
rights_of(d) := {r | some i, r in cfg.right_order; substring(d.rights, i, 1) == "1"}

# Common sessions.
internet := session("198.51.100.7", "192.0.2.99", 25)

client587 := session("198.51.100.7", "192.0.2.99", 587)

scanner := session("198.18.5.10", "192.0.2.99", 25)

lan := session("10.1.2.3", "192.0.2.99", 25)

hub := session("10.1.2.3", "192.0.2.99", 2526)

strict := session("198.51.100.7", "192.0.2.99", 2525)

backend := session("198.51.100.7", "192.0.2.10", 25)

partner := session("203.0.113.5", "192.0.2.99", 25)

connect(i) := d if {
	d := data.mta.connect with input as i with data.config as cfg
}

ehlo(i) := d if {
	d := data.mta.ehlo with input as i with data.config as cfg
}

auth(i) := d if {
	d := data.mta.auth with input as i with data.config as cfg
}

mail(i) := d if {
	d := data.mta.mail with input as i with data.config as cfg
}

rcpt(i) := d if {
	d := data.mta.rcpt with input as i with data.config as cfg
}

headers(i) := d if {
	d := data.mta.headers with input as i with data.config as cfg
}

eom(i) := d if {
	d := data.mta.eom with input as i with data.config as cfg
}

# The rights string of a session holding no right.
no_rights := concat("", ["0" | some _ in cfg.right_order])
