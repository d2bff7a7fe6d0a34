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
package mta

# The client's address family ("4" or "6") and its address as a string of bits.
remote_family := input.connection.remote.family

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
	binding := data.config.selection[remote_family][key]
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

# Selected afresh at every stage from the endpoints: nothing an adapter says can move a session
# onto another connector, and a reloaded configuration applies at once.
connector_name := selected.connector

conn := data.config.connectors[connector_name]

dialect := conn.dialect if {
	conn
} else := data.config.server.dialect
