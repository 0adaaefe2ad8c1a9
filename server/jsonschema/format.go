package jsonschema

import (
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// formatChecker returns the check of a "format" asserted for drafts
// before 2019-09, nil for names that are annotations only. (A switch,
// not a map: nothing to build when the program starts.)
func formatChecker(name string) func(string) bool {
	switch name {
	case "date-time":
		return func(s string) bool {
			_, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
			return err == nil
		}
	case "date":
		return func(s string) bool {
			_, err := time.Parse(time.DateOnly, s)
			return err == nil
		}
	case "time":
		return func(s string) bool {
			_, err := time.Parse("2006-01-02T"+"15:04:05.999999999Z07:00", "2000-01-01T"+strings.ToUpper(s))
			return err == nil
		}
	case "email":
		return func(s string) bool {
			local, domain, ok := strings.Cut(s, "@")
			return ok && isDotAtom(local) && isHostname(domain)
		}
	case "hostname":
		return isHostname
	case "ipv4":
		return func(s string) bool {
			a, err := netip.ParseAddr(s)
			return err == nil && a.Is4()
		}
	case "ipv6":
		return func(s string) bool {
			a, err := netip.ParseAddr(s)
			return err == nil && a.Is6() && a.Zone() == ""
		}
	case "uri":
		return func(s string) bool {
			u, err := url.Parse(s)
			return err == nil && u.IsAbs() && uriChars(s)
		}
	case "uri-reference":
		return func(s string) bool {
			_, err := url.Parse(s)
			return err == nil && uriChars(s)
		}
	case "uuid":
		return func(s string) bool {
			if len(s) != 36 {
				return false
			}
			for i, r := range s {
				switch i {
				case 8, 13, 18, 23:
					if r != '-' {
						return false
					}
				default:
					if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
						return false
					}
				}
			}
			return true
		}
	case "regex":
		return func(s string) bool {
			// Compiling costs time and memory in proportion to the
			// value (seconds and hundreds of MB for 600 kB), and the
			// value is the caller's: a longer one is refused.
			if len(s) > maxRegexFormat {
				return false
			}
			_, _, err := compileECMA(s, maxPatternInsts)
			return err == nil
		}
	case "json-pointer":
		return func(s string) bool {
			if s != "" && !strings.HasPrefix(s, "/") {
				return false
			}
			for i := 0; i < len(s); i++ {
				if s[i] == '~' && (i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1')) {
					return false
				}
			}
			return true
		}
	}
	return nil
}

// isDotAtom accepts the local part of an address as RFC 5321's
// Dot-string: atoms of letters, digits and !#$%&'*+-/=?^_`{|}~ joined by
// single dots, 64 characters at most. Quoted local parts are refused,
// and with them spaces and control characters (a line break in an
// address is a header injection).
func isDotAtom(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for atom := range strings.SplitSeq(s, ".") {
		if atom == "" {
			return false
		}
		for i := 0; i < len(atom); i++ {
			c := atom[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0) {
				return false
			}
		}
	}
	return true
}

// uriChars reports whether s has only the characters RFC 3986 allows in
// a URI (unreserved, reserved and "%"); url.Parse lets spaces and
// others through.
func uriChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0) {
			return false
		}
	}
	return true
}

// maxRegexFormat bounds the length of a value the "regex" format
// compiles.
const maxRegexFormat = 4096

// isHostname accepts names of LDH labels of 1 to 63 characters, 253 in
// all, with an optional trailing dot.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
