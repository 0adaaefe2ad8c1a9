package policy

import (
	"strings"
	"testing"
)

func TestAuditRotationKeys(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		size       int64
		retention  int
		durability string
		errLine    int
		errMsg     string
	}{
		{"allow/defaults", "audit:\n  log_file: /l/a.log\n", 0, DefaultAuditRetention, "", 0, ""},
		{"allow/megabytes", "audit:\n  max_size: 10MB\n  retention: 3\n  durability: fsync\n", 10 << 20, 3, "fsync", 0, ""},
		{"allow/bytes-quoted", "audit:\n  max_size: \"1048576\"\n  retention: 0\n", 1 << 20, 0, "", 0, ""},
		{"allow/kib-space", "audit:\n  max_size: 512 KiB\n", 512 << 10, DefaultAuditRetention, "", 0, ""},
		{"allow/zero-never-rotates", "audit:\n  max_size: \"0\"\n", 0, DefaultAuditRetention, "", 0, ""},
		{"deny/not-a-size", "audit:\n  max_size: big\n", 0, 0, "", 2, "is not a size"},
		{"deny/unquoted-number", "audit:\n  max_size: 1048576\n", 0, 0, "", 2, "quote it"},
		{"deny/too-small", "audit:\n  max_size: 4KB\n", 0, 0, "", 2, "below the minimum"},
		{"deny/negative-retention", "audit:\n  retention: -1\n", 0, 0, "", 2, "outside 0-1000"},
		{"deny/bad-durability", "audit:\n\n  durability: always\n", 0, 0, "", 3, "unknown durability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", "/d", []byte(tc.yaml), func(string) (string, bool) { return "", false })
			if tc.errMsg != "" {
				pe, ok := err.(*Error)
				if !ok || pe.Line != tc.errLine || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("err = %v, want line %d saying %q", err, tc.errLine, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := p.Audit
			if a.MaxSizeBytes != tc.size || *a.Retention != tc.retention || a.Durability != tc.durability {
				t.Errorf("audit = %+v (retention %d)", a, *a.Retention)
			}
		})
	}
}

// audit.include and audit.log_level do what they say, or loading refuses
// them with the key and its line.
func TestAuditIncludeAndLevel(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	for name, tc := range map[string]struct {
		yaml string
		want string // "" means it loads
	}{
		"allow/info":                {"audit:\n  log_level: INFO\n", ""},
		"allow/debug":               {"audit:\n  log_level: debug\n", ""},
		"deny/warn":                 {"audit:\n  log_level: WARN\n", `p.yaml:3: audit.log_level: "WARN" would leave allowed calls unrecorded`},
		"deny/error":                {"audit:\n  log_level: ERROR\n", "would leave allowed calls unrecorded"},
		"deny/unknown-level":        {"audit:\n  log_level: LOUD\n", `unknown level "LOUD"`},
		"allow/all-fields":          {"audit:\n  include: [timestamp, request_id, tool_name, arguments, result_status, execution_time, security_events]\n", ""},
		"allow/optional-left-out":   {"audit:\n  include: [timestamp, tool_name, result_status, security_events]\n", ""},
		"deny/required-left-out":    {"audit:\n  include: [timestamp, tool_name, arguments]\n", "p.yaml:3: audit.include: result_status is always recorded"},
		"deny/security-events-gone": {"audit:\n  include: [timestamp, tool_name, result_status]\n", "security_events is always recorded"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse("p.yaml", "/d", []byte("version: \"1.0\"\n"+tc.yaml), env)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			case tc.want == "" && strings.Contains(name, "optional") && (p.Audits("arguments") || p.Audits("request_id") || !p.Audits("tool_name")):
				t.Errorf("Audits disagrees with the include list")
			}
		})
	}
}
