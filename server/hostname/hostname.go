// Package hostname is the one spelling of host names that the policy
// loader and the network guard share: a name is compared after
// Normalize, and only what Valid accepts is a host at all.
package hostname

import (
	"net/netip"
	"strings"
)

// Normalize lower-cases h and drops IPv6 brackets and a trailing dot, so
// comparisons see one spelling. It does not trim spaces: a caller that
// accepts them (the policy loader) trims them first.
func Normalize(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// Valid reports whether h, normalized, is an IP address (without a zone)
// or a host name of LDH labels (underscores allowed, as seen in the
// wild).
func Valid(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Zone() == ""
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
