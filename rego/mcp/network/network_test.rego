package mcp.network_test

import data.mcp.network

pol := {
	"allowed_ranges": ["10.0.0.0/8", "fd00::/8"],
	"endpoints": {"lite.duckduckgo.com": {"ports": [443], "description": "ddg"}},
	"blocked_ports": [22],
	"allow_dns": true,
	"dns_allowlist": ["lite.duckduckgo.com", "internal.example"],
}

dial(host, ip, port) := {"phase": "dial", "host": host, "ip": ip, "embedded_ipv4": "", "port": port, "network": "tcp", "tool": "fetch"}

resolve(host, port) := {"phase": "resolve", "host": host, "ip": "", "embedded_ipv4": "", "port": port, "network": "tcp", "tool": "fetch"}

test_allow_resolve_endpoint if {
	network.allow with input as resolve("lite.duckduckgo.com", 443) with data.mcp.policy.network as pol
}

test_allow_resolve_dns_allowlist if {
	network.allow with input as resolve("internal.example", 8080) with data.mcp.policy.network as pol
}

test_deny_resolve_unlisted if {
	d := network.decision with input as resolve("evil.example", 443) with data.mcp.policy.network as pol
	d.reasons == [`name "evil.example" on port 443 is not in network.dns_allowlist or network.allowed_endpoints`]
}

test_deny_resolve_dns_off if {
	p := json.patch(pol, [{"op": "replace", "path": "/allow_dns", "value": false}])
	d := network.decision with input as resolve("lite.duckduckgo.com", 443) with data.mcp.policy.network as p
	"name resolution is off (network.allow_dns is false)" in d.reasons
	not d.allow
}

test_allow_dial_endpoint_public_ip if {
	network.allow with input as dial("lite.duckduckgo.com", "52.1.2.3", 443) with data.mcp.policy.network as pol
}

test_deny_dial_endpoint_wrong_port if {
	not network.allow with input as dial("lite.duckduckgo.com", "52.1.2.3", 80) with data.mcp.policy.network as pol
}

test_deny_endpoint_resolving_to_metadata if {
	d := network.decision with input as dial("lite.duckduckgo.com", "169.254.169.254", 443)
		with data.mcp.policy.network as pol
	d.allow == false
	d.reasons == [`"lite.duckduckgo.com" resolved to 169.254.169.254, a loopback, private, link-local or reserved address not in network.allowed_ranges`]
}

test_deny_endpoint_resolving_to_loopback_v6 if {
	not network.allow with input as dial("lite.duckduckgo.com", "::1", 443) with data.mcp.policy.network as pol
}

test_deny_endpoint_resolving_to_nat64_loopback if {
	inp := object.union(dial("lite.duckduckgo.com", "64:ff9b::7f00:1", 443), {"embedded_ipv4": "127.0.0.1"})
	not network.allow with input as inp with data.mcp.policy.network as pol
}

test_deny_endpoint_resolving_to_6to4_private if {
	inp := object.union(dial("lite.duckduckgo.com", "2002:c0a8:101::1", 443), {"embedded_ipv4": "192.168.1.1"})
	not network.allow with input as inp with data.mcp.policy.network as pol
}

test_allow_private_ip_in_allowed_ranges if {
	network.allow with input as dial("", "10.1.2.3", 8080) with data.mcp.policy.network as pol
	network.allow with input as dial("internal.example", "10.1.2.3", 8080) with data.mcp.policy.network as pol
	network.allow with input as dial("", "fd00::5", 443) with data.mcp.policy.network as pol
}

test_deny_ip_literal_outside_ranges if {
	d := network.decision with input as dial("", "8.8.8.8", 443) with data.mcp.policy.network as pol
	d.reasons == ["8.8.8.8:443 is not in network.allowed_ranges"]
}

test_deny_blocked_port_even_in_range if {
	d := network.decision with input as dial("", "10.0.0.5", 22) with data.mcp.policy.network as pol
	d.reasons == ["port 22 is in network.blocked_ports"]
}

test_deny_name_not_endpoint_outside_ranges if {
	not network.allow with input as dial("internal.example", "52.1.2.3", 443) with data.mcp.policy.network as pol
}

test_deny_unknown_phase if {
	inp := object.union(dial("", "10.0.0.1", 80), {"phase": "listen"})
	d := network.decision with input as inp with data.mcp.policy.network as pol
	`unknown network phase "listen"` in d.reasons
}

test_deny_missing_ip if {
	not network.allow with input as dial("", "", 80) with data.mcp.policy.network as pol
}

test_allow_resolve_endpoint_not_in_dns_allowlist if {
	p := object.union(pol, {"dns_allowlist": []})
	network.allow with input as resolve("lite.duckduckgo.com", 443) with data.mcp.policy.network as p
	not network.allow with input as resolve("lite.duckduckgo.com", 80) with data.mcp.policy.network as p
}

test_deny_dial_named_host_outside if {
	d := network.decision with input as dial("example.org", "203.0.113.5", 443) with data.mcp.policy.network as pol
	d.allow == false
	d.reasons == [`"example.org" on port 443 is not an allowed endpoint and 203.0.113.5 is not in network.allowed_ranges`]
}
