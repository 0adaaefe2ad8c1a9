package policy

import (
	"strings"
	"testing"
)

// The hint fits what was written.
func TestCIDRHint(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":             `"10.0.0.1" is one address, not a CIDR: write 10.0.0.1/32`,
		"::1":                  `"::1" is one address, not a CIDR: write ::1/128`,
		"10.0.0.0/33":          "the prefix length after / is 0-32 for an IPv4 address",
		"fd00::/129":           "the prefix length after / is 0-128 for an IPv6 address",
		"10.0.0.0/255.255.0.0": "write the netmask as a prefix length, 10.0.0.0/16",
		"10.0.0.0/255.0.255.0": "255.0.255.0 is not a netmask",
		"10.1.*.*":             "wildcards are written as a prefix, 10.1.0.0/16",
		"192.168.1.*":          "wildcards are written as a prefix, 192.168.1.0/24",
		"10.0.0.0-10.0.0.255":  "this range is 10.0.0.0/24",
		"10.0.0.5-10.0.0.9":    "write a range as one or more CIDRs",
		"example.com":          "is a host name: allowed_ranges takes CIDRs; put hosts in network.allowed_endpoints",
		"10.0.0.256/24":        `"10.0.0.256" is not an IP address`,
		"10.0.0.0/8x":          "the prefix length after / is 0-32",
		"":                     "is not a CIDR (write 10.0.0.0/8",
	} {
		if got := cidrHint(in); !strings.Contains(got, want) {
			t.Errorf("cidrHint(%q) = %q, want it to contain %q", in, got, want)
		}
	}
}

// Loading goes on past the first problem: every one is reported, in the
// order of the file, and a follow-on of a misspelt key is not.
func TestEveryProblemReported(t *testing.T) {
	src := "version: \"2\"\nnetwork:\n  allowed_ranges: [10.0.0.1]\n  allowed_endpoints:\n    - host: a.b\n      port: 443\n  blocked_ports: [ssh, 0]\ntools:\n  alowed: []\n  timeout: -1\naudit:\n  durability: maybe\n"
	_, err := Parse("p.yaml", t.TempDir(), []byte(src), env(map[string]string{"HOME": "/home/ann"}))
	errs, ok := err.(Errors)
	if !ok {
		t.Fatalf("err = %#v, want Errors", err)
	}
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
	}
	want := "version network.allowed_ranges[0] network.allowed_endpoints[0].port network.blocked_ports[0] network.blocked_ports[1] tools.alowed tools.timeout audit.durability"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys = %s\nwant   %s\n%v", got, want, err)
	}
	if !strings.HasPrefix(err.Error(), "p.yaml:1: version:") || strings.Count(err.Error(), "\n") != len(errs)-1 {
		t.Errorf("message:\n%v", err)
	}
}
