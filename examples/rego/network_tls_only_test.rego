package examples.network_tls_only_test

import data.mcp.network

lan_policy := {
	"allowed_ranges": ["10.0.0.0/8"], "endpoints": {}, "blocked_ports": [],
	"allow_dns": false, "dns_allowlist": [],
}

lan_dial(tool, port) := {"phase": "dial", "host": "", "ip": "10.0.0.7", "embedded_ipv4": "", "port": port, "network": "tcp", "tool": tool}

test_example_web_search_port_80_denied if {
	d := network.decision with input as lan_dial("web_search", 80) with data.mcp.policy.network as lan_policy
	d.reasons == ["web_search may only use port 443, not 80"]
}

test_example_web_search_443_allowed if {
	network.allow with input as lan_dial("web_search", 443) with data.mcp.policy.network as lan_policy
}

test_example_other_tools_unaffected if {
	network.allow with input as lan_dial("fetch", 80) with data.mcp.policy.network as lan_policy
}
