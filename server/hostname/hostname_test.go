package hostname

import "testing"

func TestNormalizeAndValid(t *testing.T) {
	for in, want := range map[string]struct {
		norm  string
		valid bool
	}{
		"Example.COM.":        {"example.com", true},
		"[::1]":               {"::1", true},
		"10.0.0.1":            {"10.0.0.1", true},
		"fe80::1%eth0":        {"fe80::1%eth0", false},
		"under_score.example": {"under_score.example", true},
		" example.com":        {" example.com", false},
		"a..b":                {"a..b", false},
		"":                    {"", false},
		"ex ample.com":        {"ex ample.com", false},
		"xn--bcher-kva.de":    {"xn--bcher-kva.de", true},
	} {
		n := Normalize(in)
		if n != want.norm || Valid(n) != want.valid {
			t.Errorf("%q: Normalize = %q, Valid = %v; want %q, %v", in, n, Valid(n), want.norm, want.valid)
		}
	}
}
