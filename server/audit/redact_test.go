package audit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// markerRE matches a redaction marker; tests write it as [R].
var markerRE = regexp.MustCompile(`\[REDACTED:[0-9a-f]{16}\]`)

func norm(s string) string { return markerRE.ReplaceAllString(s, "[R]") }

func TestSensitiveKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		// deny: a value under these keys is replaced whole.
		{"password", true}, {"Password", true}, {"db_password", true}, {"passwd", true}, {"pwd", true},
		{"passphrase", true}, {"pass", true}, {"passcode", true}, {"user_pass", true}, {"secret", true},
		{"clientSecret", true}, {"client_secret", true}, {"token", true}, {"access_token", true},
		{"refreshToken", true}, {"refresh", true}, {"id_token", true}, {"api_key", true}, {"apiKey", true},
		{"APIKey", true}, {"x-api-key", true}, {"X-Api-Key", true}, {"auth", true}, {"Authorization", true},
		{"credentials", true}, {"credential", true}, {"private_key", true}, {"privateKey", true},
		{"privkey", true}, {"ssh_key", true}, {"signing_key", true}, {"encryption_key", true},
		{"mfa_code", true}, {"otp", true}, {"dsn", true}, {"DATABASE_DSN", true}, {"connection_string", true},
		{"cookie", true}, {"Set-Cookie", true}, {"session", true}, {"sessionId", true}, {"session_token", true},
		{"aws_secret_access_key", true}, {"AWS_SECRET_ACCESS_KEY", true}, {"webhook_secret", true},
		// allow: near-misses that stay readable.
		{"author", false}, {"authority", false}, {"passenger", false}, {"bypass_cache", false},
		{"bug_id", false}, {"token_count", false}, {"max_tokens", false}, {"tokenizer_name", false},
		{"password_policy_url", false}, {"token_expires_at", false}, {"secret_name", false},
		{"query", false}, {"title", false}, {"description", false}, {"keyword", false},
		{"primary_key", false}, {"tags", false}, {"monkey", false}, {"compass", false}, {"spinner", false},
	} {
		name := "allow/" + tc.key
		if tc.want {
			name = "deny/" + tc.key
		}
		t.Run(name, func(t *testing.T) {
			if got := audit.SensitiveKey(tc.key); got != tc.want {
				t.Errorf("SensitiveKey(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
}

// The secrets in these cases; none may survive redaction.
const (
	awsID     = "AKIAIOSFODNN7EXAMPLE"
	awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	jwt       = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	ghToken   = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
)

var redactCases = []struct {
	name, in, want string
}{
	// deny: only the secret-shaped part goes.
	{"deny/bearer-in-shell-comment", `sh -c "echo pwned > f; id # Bearer AAAAAAAAAAAA"`, `sh -c "echo pwned > f; id # Bearer [R]"`},
	{"deny/aws-id-in-comment", "id #" + awsID, "id #[R]"},
	{"deny/aws-id-and-secret", awsID + " " + awsSecret, "[R] [R]"},
	{"deny/aws-secret-assignment", "aws_secret_access_key=" + awsSecret, "aws_secret_access_key=[R]"},
	{"deny/bearer", "Bearer abcdefghijklmnop", "Bearer [R]"},
	{"deny/authorization-bearer", "authorization: bearer abc.def.ghi123", "authorization: bearer [R]"},
	{"deny/authorization-basic", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [R]"},
	{"deny/basic-alone", "curl -H 'Basic dXNlcjpwYXNz' x", "curl -H 'Basic [R]' x"},
	{"deny/authorization-token", "Authorization: token " + ghToken, "Authorization: token [R]"},
	{"deny/url-password", "https://admin:pw@db.example.com/x", "https://admin:[R]@db.example.com/x"},
	{"deny/connection-url", "postgres://u:s3cr3t@localhost:5432/db?sslmode=disable", "postgres://u:[R]@localhost:5432/db?sslmode=disable"},
	{"deny/url-password-with-at", "https://u:p@ss@host/", "https://u:[R]@host/"},
	{"deny/connection-string", "Server=db;User Id=sa;Password=hunter2;", "Server=db;User Id=sa;Password=[R];"},
	{"deny/json-in-string", `{"password":"correct horse battery","user":"bob"}`, `{"password":"[R]","user":"bob"}`},
	{"deny/key-colon", "password: hunter2 and more", "password: [R] and more"},
	{"deny/query-token", "/cb?token=abc123&page=2", "/cb?token=[R]&page=2"},
	{"deny/header", "X-Api-Key: abcd1234", "X-Api-Key: [R]"},
	{"deny/mfa", "mfa_code=123456", "mfa_code=[R]"},
	{"deny/stripe", "key sk_live_abcdefghijklmnop1234 end", "key [R] end"},
	{"deny/stripe-restricted", "rk_test_abcdefghijklmnop", "[R]"},
	{"deny/gitlab", "glpat-abcdefghijklmnopqrst", "[R]"},
	{"deny/google", "key=AIzaSyA1234567890abcdefghijklmnopqrstuv", "key=[R]"},
	{"deny/google-alone", "use AIzaSyA1234567890abcdefghijklmnopqrstuv now", "use [R] now"},
	{"deny/npm", "//registry.npmjs.org/:_authToken npm_abcdefghijklmnopqrstuvwxyz0123456789", "//registry.npmjs.org/:_authToken [R]"},
	{"deny/jwt", "t " + jwt, "t [R]"},
	{"deny/github", ghToken, "[R]"},
	{"deny/github-pat", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[R]"},
	{"deny/slack", "xoxb-1234567890-abcdefghij", "[R]"},
	{"deny/openai", "sk-abcdefghijklmnopqrstuvwx", "[R]"},
	{"deny/openai-project", "sk-proj-abcdefghijklmnopqrstuvwx_yz", "[R]"},
	{"deny/stripe-webhook", "whsec_abcdefghijklmnopqrstuvwxyz", "[R]"},
	{"deny/private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\ndef\n-----END RSA PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\n[R]\n-----END RSA PRIVATE KEY-----"},
	{"deny/private-key-cut", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r", "-----BEGIN OPENSSH PRIVATE KEY-----\n[R]"},
	{"deny/token-after-underscore", "tool_" + ghToken, "tool_[R]"},
	{"deny/two-secrets", "a Bearer AAAAAAAAAAAA b " + ghToken + " c", "a Bearer [R] b [R] c"},
	// allow: near-misses stay readable.
	{"allow/prose", "hello world", "hello world"},
	{"allow/bearer-of-news", "the bearer of bad news", "the bearer of bad news"},
	{"allow/bearer-word", "the bearer instrument", "the bearer instrument"},
	{"allow/basic-word", "Basic function of the system", "Basic function of the system"},
	{"allow/risk", "risk-assessment of the plan", "risk-assessment of the plan"},
	{"allow/short-sk", "sk-1", "sk-1"},
	{"allow/akia-alone", "AKIA", "AKIA"},
	{"allow/eyj-alone", "eyJ alone", "eyJ alone"},
	{"allow/ghp-short", "ghp_short", "ghp_short"},
	{"allow/bug-id", "bug_id=42", "bug_id=42"},
	{"allow/token-count", "token_count=5 max_tokens: 100", "token_count=5 max_tokens: 100"},
	{"allow/policy-url", "password_policy_url=https://example.com/policy", "password_policy_url=https://example.com/policy"},
	{"allow/url", "https://example.com/a/b?q=search&page=2#top", "https://example.com/a/b?q=search&page=2#top"},
	{"allow/url-user-only", "https://user@example.com/ and git@github.com:org/repo.git", "https://user@example.com/ and git@github.com:org/repo.git"},
	{"allow/url-port", "http://localhost:8080/path@x", "http://localhost:8080/path@x"},
	{"allow/uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"},
	{"allow/git-sha", "commit da39a3ee5e6b4b0d3255bfef95601890afd80709", "commit da39a3ee5e6b4b0d3255bfef95601890afd80709"},
	{"allow/time", "at 12:30:45 author: ann", "at 12:30:45 author: ann"},
	{"allow/passenger", "passenger=3", "passenger=3"},
	{"allow/underscored-words", "task_live_result my_sk-1 risk_assessment", "task_live_result my_sk-1 risk_assessment"},
	{"allow/authorization-prose", "authorization header missing", "authorization header missing"},
	{"allow/public-key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"},
}

func TestRedactString(t *testing.T) {
	for _, tc := range redactCases {
		t.Run(tc.name, func(t *testing.T) {
			got := audit.RedactString(tc.in)
			if norm(got) != tc.want {
				t.Errorf("RedactString(%q)\n got %q\nwant %q", tc.in, norm(got), tc.want)
			}
			if again := audit.RedactString(got); again != got {
				t.Errorf("not idempotent: %q then %q", got, again)
			}
			if strings.HasPrefix(tc.name, "deny/") != audit.SecretValue(tc.in) {
				t.Errorf("SecretValue(%q) = %v", tc.in, audit.SecretValue(tc.in))
			}
		})
	}
}

func TestFingerprints(t *testing.T) {
	r1 := audit.NewRedactor([]byte("key-one-key-one-key-one-key-one-"))
	r1b := audit.NewRedactor([]byte("key-one-key-one-key-one-key-one-"))
	r2 := audit.NewRedactor([]byte("key-two-key-two-key-two-key-two-"))
	a := r1.String("Bearer AAAAAAAAAAAA")
	if a != r1.String("x Bearer AAAAAAAAAAAA")[2:] || a != r1b.String("Bearer AAAAAAAAAAAA") {
		t.Errorf("the same secret under the same key must correlate: %q", a)
	}
	if a == r1.String("Bearer AAAAAAAAAAAB") {
		t.Error("different secrets share a fingerprint")
	}
	if a == r2.String("Bearer AAAAAAAAAAAA") {
		t.Error("different keys share a fingerprint")
	}
	if !audit.IsMarker(strings.TrimPrefix(a, "Bearer ")) {
		t.Errorf("not a marker: %q", a)
	}
}

func TestRedactDeep(t *testing.T) {
	in := map[string]any{
		"query":  "ok",
		"author": "ann",
		"nested": []any{
			map[string]any{"deeper": []any{map[string]any{"apiKey": "x", "note": "Bearer abcdefghijklmnop"}}},
			ghToken,
			42.0,
			nil,
		},
		"headers":     map[string]string{"Cookie": "a=b", "Accept": "text/html"},
		"list":        []string{"plain", awsID},
		"raw":         json.RawMessage(`{"password":"p","n":1}`),
		"id " + jwt:   "key is a secret",
		"token_count": 7,
		"password":    map[string]any{"nested": "whole object goes"},
		"refresh":     nil,
	}
	out, _ := json.Marshal(audit.Redact(in))
	s := string(out)
	for _, leak := range []string{`"x"`, "abcdefghijklmnop", "ghp_", "a=b", "AKIA", `"p"`, "eyJ", "whole object goes"} {
		if strings.Contains(s, leak) {
			t.Errorf("redacted output leaks %s: %s", leak, s)
		}
	}
	for _, keep := range []string{`"query":"ok"`, `"author":"ann"`, `"Accept":"text/html"`, `"plain"`, `42`, `"n":1`,
		`"token_count":7`, `"key is a secret"`, `"refresh":null`, `"note":"Bearer [REDACTED:`, `"id [REDACTED:`} {
		if !strings.Contains(s, keep) {
			t.Errorf("redacted output lost %s: %s", keep, s)
		}
	}
	// The input is not modified.
	if in["nested"].([]any)[1] != ghToken {
		t.Error("Redact modified its input")
	}
}

func TestRedactLogLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"deny/url-query-values", `Get "https://api.example.com/v1/search?q=secret+plans&key=abc#frag": dial tcp`,
			`Get "https://api.example.com/v1/search?q=[R]&key=[R]#frag": dial tcp`},
		{"deny/url-userinfo", "fetch https://admin:pw@host/x failed", "fetch https://[R]@host/x failed"},
		{"deny/token-in-text", "tool failed: Bearer AAAAAAAAAAAA rejected", "tool failed: Bearer [R] rejected"},
		{"allow/url-no-query", "https://example.com/a/b", "https://example.com/a/b"},
		{"allow/empty-query-key", "https://example.com/a?flag&x=", "https://example.com/a?flag&x="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := audit.RedactLogLine(tc.in)
			if norm(got) != tc.want {
				t.Errorf("got %q, want %q", norm(got), tc.want)
			}
			if audit.RedactLogLine(got) != got {
				t.Errorf("not idempotent: %q", got)
			}
		})
	}
}

func TestRedactingHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(audit.NewRedactingHandler(slog.NewTextHandler(&buf, nil), nil))
	log = log.With("password", "hunter2")
	log.Error("fetch https://u:pw@h/x?token=abc failed", "url", "https://h/p?q=secretquery",
		"err", os.ErrNotExist, "token", "plain", "group", slog.GroupValue(slog.String("auth", "Bearer AAAAAAAAAAAA")),
		"secret", audit.Secret("s3"), "credentials", slog.GroupValue(slog.String("value", "nested-plain")))
	out := buf.String()
	for _, leak := range []string{"hunter2", "pw@", "token=abc", "secretquery", "plain", "AAAAAAAAAAAA", "s3", "nested-plain"} {
		if strings.Contains(out, leak) {
			t.Errorf("stderr leaks %q: %s", leak, out)
		}
	}
	buf.Reset()
	log.Info("x", "tool", strings.Repeat("T", 1<<20))
	if buf.Len() > 4096 || !strings.Contains(buf.String(), "(1048576 bytes)") {
		t.Errorf("a 1 MB attribute makes a %d-byte line", buf.Len())
	}
	for _, keep := range []string{"file does not exist", "https://h/p?q=", "fetch https://"} {
		if !strings.Contains(out, keep) {
			t.Errorf("stderr lost %q: %s", keep, out)
		}
	}
}

func TestRedactingHandlerUsesInstallationKey(t *testing.T) {
	key := []byte("installation-key-installation-ke")
	var buf bytes.Buffer
	h := audit.NewRedactingHandler(slog.NewTextHandler(&buf, nil), nil)
	log := slog.New(h).With("a", "b")
	h.UseRedactor(audit.NewRedactor(key))
	log.Info("Bearer AAAAAAAAAAAA")
	want := audit.NewRedactor(key).String("Bearer AAAAAAAAAAAA")
	if !strings.Contains(buf.String(), want) {
		t.Errorf("stderr %q does not fingerprint as the audit log (%q)", buf.String(), want)
	}
}

func TestSecretType(t *testing.T) {
	var buf bytes.Buffer
	slogTo(&buf).Info("x", "token", audit.Secret("hunter2"))
	if strings.Contains(buf.String(), "hunter2") || audit.Secret("hunter2").String() != audit.Redacted {
		t.Errorf("Secret leaked: %q", buf.String())
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state", "audit.key")
	k1, err := audit.LoadKey(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := audit.LoadKey(p)
	if err != nil || !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Fatalf("reload: %v, equal=%v", err, bytes.Equal(k1, k2))
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %o", st.Mode().Perm())
	}
	t.Run("allow/concurrent-first-use", func(t *testing.T) {
		q := filepath.Join(dir, "race", "audit.key")
		keys := make(chan []byte, 8)
		for range 8 {
			go func() {
				k, err := audit.LoadKey(q)
				if err != nil {
					t.Error(err)
				}
				keys <- k
			}()
		}
		first := <-keys
		for range 7 {
			if k := <-keys; !bytes.Equal(k, first) {
				t.Fatal("servers starting together got different keys")
			}
		}
	})
	t.Run("deny/readable-by-others", func(t *testing.T) {
		q := filepath.Join(dir, "loose.key")
		os.WriteFile(q, k1, 0o600)
		os.Chmod(q, 0o644)
		if _, err := audit.LoadKey(q); err == nil || !strings.Contains(err.Error(), "mode 644") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("deny/symlink", func(t *testing.T) {
		q := filepath.Join(dir, "link.key")
		os.Symlink(p, q)
		if _, err := audit.LoadKey(q); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("deny/wrong-size", func(t *testing.T) {
		q := filepath.Join(dir, "short.key")
		os.WriteFile(q, []byte("short"), 0o600)
		if _, err := audit.LoadKey(q); err == nil || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("deny/directory", func(t *testing.T) {
		if _, err := audit.LoadKey(dir); err == nil {
			t.Error("a directory was taken as a key")
		}
	})
}

// fuzzSecrets are the secrets in the seed corpus; no redacted output may
// contain one.
var fuzzSecrets = []string{"AAAAAAAAAAAA", awsID, awsSecret, ghToken, "hunter2", "dXNlcjpwYXNzd29yZA", "s3cr3t"}

func FuzzRedact(f *testing.F) {
	f.Add(`{"a":"Bearer AAAAAAAAAAAA","b":[{"token":"x"}]}`)
	f.Add(`["` + awsID + ` ` + awsSecret + `", 1, null, {"nested": {"password": "hunter2"}}]`)
	f.Add(`"sh -c \"id # Bearer AAAAAAAAAAAA\""`)
	f.Add(`{"` + ghToken + `": "Authorization: Basic dXNlcjpwYXNzd29yZA=="}`)
	f.Add(`"postgres://u:s3cr3t@h/db Password=hunter2;"`)
	f.Add(`"-----BEGIN PRIVATE KEY-----\nhunter2\n"`)
	for _, tc := range redactCases {
		data, _ := json.Marshal(tc.in)
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, doc string) {
		// Any string is redacted without panicking, idempotently.
		once := audit.RedactString(doc)
		if twice := audit.RedactString(once); twice != once {
			t.Fatalf("RedactString not idempotent:\n%q\n%q", once, twice)
		}
		if l := audit.RedactLogLine(doc); audit.RedactLogLine(l) != l {
			t.Fatalf("RedactLogLine not idempotent: %q", l)
		}
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		out := audit.Redact(v)
		data, _ := json.Marshal(out)
		if seedDoc(doc) {
			for _, s := range fuzzSecrets {
				if strings.Contains(string(data), s) {
					t.Fatalf("secret %q survived: %s", s, data)
				}
			}
		}
		again, _ := json.Marshal(audit.Redact(out))
		if !bytes.Equal(data, again) {
			t.Fatalf("Redact not idempotent:\n%s\n%s", data, again)
		}
	})
}

// seedDoc reports whether doc is one of the seeds, whose secrets are all
// in a redacted position; a mutated document may move a secret where it
// is ordinary text.
func seedDoc(doc string) bool {
	for _, s := range []string{`{"a":"Bearer AAAAAAAAAAAA","b":[{"token":"x"}]}`,
		`["` + awsID + ` ` + awsSecret + `", 1, null, {"nested": {"password": "hunter2"}}]`,
		`"sh -c \"id # Bearer AAAAAAAAAAAA\""`,
		`{"` + ghToken + `": "Authorization: Basic dXNlcjpwYXNzd29yZA=="}`,
		`"postgres://u:s3cr3t@h/db Password=hunter2;"`,
		`"-----BEGIN PRIVATE KEY-----\nhunter2\n"`} {
		if doc == s {
			return true
		}
	}
	return false
}
