# Receive-connector selection
#
# A connector is (bindings ip:port) x (remote IP ranges). Of the connectors whose binding
# matches the local endpoint, the one whose remote range matches the client most
# specifically wins; on equal ranges a specific local IP beats the wildcard binding.
# Ties cannot happen: the config loader refuses equal or partially overlapping ranges.
#
# The index (data.config.selection) is built at load time (engine/data.ts): every range is
# split into CIDR blocks keyed by the block's leading address bits, so a lookup tries one
# key per distinct prefix length on the binding instead of scanning connectors.
#
# Selection reads only input.connection; it is part of the session document (session.rego),
# computed once per session by the engine and never by an adapter.
package mta

local_port_key := format_int(input.connection.local.port, 10)

binding_keys := [
	concat("|", [local_port_key, input.connection.local.ip]),
	concat("|", [local_port_key, "*"]),
]

# Every connector range that contains the client, on a binding that matches the local endpoint.
# The index precomputes each entry's score: lower is more specific (smaller range first, then
# the specific local IP before the wildcard).
selection_candidates contains candidate if {
	some key in binding_keys
	binding := data.config.selection[input.connection.remote.family][key]
	some length in binding.lengths
	entry := binding.prefixes[substring(input.connection.remote.bits, 0, length)]
	candidate := {
		"connector": entry.connector,
		"range": entry.range,
		"binding": entry.binding,
		"score": entry.score,
	}
}

selected := candidate if {
	best := min({c.score | some c in selection_candidates})
	some candidate in selection_candidates
	candidate.score == best
}

# The connector as selection sees it (session document only).
selected_conn := data.config.connectors[selected.connector]

# The session's connector, for every stage check.
conn := data.config.connectors[current_session.connector]

dialect := conn.dialect if {
	conn
} else := data.config.server.dialect
