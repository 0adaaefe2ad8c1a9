# METADATA
# title: Network connections
# description: |
#   Decides name lookups (phase "resolve") and every connection attempt
#   (phase "dial", on the resolved IP and port, redirects included).
#   Input: phase, host (name, "" for an IP literal), ip, embedded_ipv4 (the
#   IPv4 carried by a NAT64, 6to4 or IPv4-compatible address), port,
#   network, tool. An IPv4-mapped IPv6 address arrives as plain IPv4.
#   Outputs: allow, deny (reasons to refuse; user modules add to it),
#   reasons (deny plus what the connection lacks), decision {allow, reasons}.
# scope: package
package mcp.network

policy := data.mcp.policy.network

# Addresses an allowed endpoint may never resolve to, unless
# network.allowed_ranges names them explicitly.
special_ranges := [
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
	"169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
	"192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
	"224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128", "::/96",
	"64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
	"2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
]

default allow := false

allow if {
	permitted
	count(deny) == 0
}

# Resolve: DNS must be on and the name allowlisted (or an endpoint).
permitted if {
	input.phase == "resolve"
	policy.allow_dns == true
	resolvable
}

resolvable if input.host in policy.dns_allowlist

resolvable if endpoint_port

endpoint_port if input.port in policy.endpoints[input.host].ports

# Dial: an address inside allowed_ranges...
permitted if {
	input.phase == "dial"
	in_allowed_ranges
}

# ...or an allowed endpoint's port on an address that is not special.
permitted if {
	input.phase == "dial"
	input.host != ""
	endpoint_port
	not special
}

in_allowed_ranges if {
	input.ip != ""
	count(net.cidr_contains_matches(policy.allowed_ranges, input.ip)) > 0
}

special if count(net.cidr_contains_matches(special_ranges, input.ip)) > 0

special if {
	input.embedded_ipv4 != ""
	count(net.cidr_contains_matches(special_ranges, input.embedded_ipv4)) > 0
}

deny contains sprintf("port %d is in network.blocked_ports", [input.port]) if input.port in policy.blocked_ports

# reasons explains a refusal; it is evaluated only when allow is not true.
reasons contains reason if some reason in deny

reasons contains sprintf("unknown network phase %q", [input.phase]) if not input.phase in {"resolve", "dial"}

reasons contains "name resolution is off (network.allow_dns is false)" if {
	input.phase == "resolve"
	not policy.allow_dns == true
}

reasons contains sprintf("name %q on port %d is not in network.dns_allowlist or network.allowed_endpoints", [input.host, input.port]) if {
	input.phase == "resolve"
	not resolvable
}

reasons contains sprintf("%s:%d is not in network.allowed_ranges", [input.ip, input.port]) if {
	input.phase == "dial"
	input.host == ""
	not in_allowed_ranges
}

reasons contains sprintf("%q on port %d is not an allowed endpoint and %s is not in network.allowed_ranges", [input.host, input.port, input.ip]) if {
	input.phase == "dial"
	input.host != ""
	not endpoint_port
	not in_allowed_ranges
}

reasons contains sprintf("%q resolved to %s, a loopback, private, link-local or reserved address not in network.allowed_ranges", [input.host, input.ip]) if {
	input.phase == "dial"
	input.host != ""
	endpoint_port
	special
	not in_allowed_ranges
}

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(reasons)}
