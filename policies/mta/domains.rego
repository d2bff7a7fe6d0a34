# Accepted domains and address classification
#
# Addresses arrive normalised by the engine (lower-case A-label domain, trailing dot removed,
# routing flags set, parent domains listed closest first), so nothing here parses strings.
# Wildcards (*.domain) match on label boundaries only: data.config.domains.wildcard is keyed
# by the parent domain and looked up for each parent of the address's domain.
package mta

# The accepted-domain type of an address's domain: exact entry first, else the closest wildcard.
domain_type(address) := data.config.domains.exact[address.domain]

domain_type(address) := wildcard_types[0] if {
	not data.config.domains.exact[address.domain]
	wildcard_types := [t | some parent in address.parents; t := data.config.domains.wildcard[parent]]
}

# A domain literal ([192.0.2.10]) naming this server: the connection's own address or a
# configured local address.
local_literal(address) if address.literal == input.connection.local.ip

local_literal(address) if data.config.server.local_addresses[address.literal]

foreign_literal(address) if {
	is_string(address.literal)
	not local_literal(address)
}

# Addresses whose real destination depends on how a downstream hop interprets them
# (RFC 5321 §3.6.1, and why Exim and Postfix refuse them too): source routes, %-hack, bang paths, quoted @, several @, or a
# literal that is not ours. Refused without Accept-Any-Recipient.
routed(address) if address.routing.source_route

routed(address) if address.routing.percent

routed(address) if address.routing.bang

routed(address) if address.routing.quoted_at

routed(address) if address.routing.multiple_at

routed(address) if foreign_literal(address)

accepted_recipient(address) if domain_type(address)

accepted_recipient(address) if local_literal(address)

# "Inside" senders (Exchange CheckInternal): authoritative and internal-relay domains, and a
# literal naming this server, which RCPT accepts as local mail (accepted_recipient): a sender
# that claims a local mailbox needs the same right whichever way it writes the domain.
internal_sender(address) if domain_type(address) in {"authoritative", "internal_relay"}

internal_sender(address) if local_literal(address)
