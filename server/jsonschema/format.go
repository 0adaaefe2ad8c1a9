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
			return ok && local != "" && len(local) <= 64 && !strings.ContainsAny(local, " @") && isHostname(domain)
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
			return err == nil && u.IsAbs()
		}
	case "uri-reference":
		return func(s string) bool {
			_, err := url.Parse(s)
			return err == nil
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
			_, err := compileECMA(s)
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
