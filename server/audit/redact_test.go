package audit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestSensitiveKeys(t *testing.T) {
	for _, k := range []string{
		"password", "Password", "db_password", "passwd", "pwd", "passphrase", "secret", "clientSecret",
		"client_secret", "token", "access_token", "refreshToken", "id_token", "api_key", "apiKey", "APIKey",
		"x-api-key", "X-Api-Key", "auth", "Authorization", "credentials", "credential", "private_key",
		"privateKey", "cookie", "Set-Cookie", "session", "sessionId", "session_token", "aws_secret_access_key",
	} {
		if !audit.SensitiveKey(k) {
			t.Errorf("SensitiveKey(%q) = false", k)
		}
	}
	for _, k := range []string{"author", "authority", "query", "title", "description", "keyword", "primary_key", "tags", "monkey", "tokenizer_name"} {
		if audit.SensitiveKey(k) {
			t.Errorf("SensitiveKey(%q) = true", k)
		}
	}
}

func TestSecretValues(t *testing.T) {
	for _, v := range []string{
		"Bearer abcdefghijklmnop",
		"authorization: bearer abc.def.ghi123",
		"AKIAIOSFODNN7EXAMPLE",
		"key ASIAABCDEFGHIJKLMNOP here",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
		"-----BEGIN PRIVATE KEY-----",
		"-----BEGIN OPENSSH PRIVATE KEY-----",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
		"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
		"github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
		"xoxb-1234567890-abcdefghij",
		"sk-abcdefghijklmnopqrstuvwx",
		"sk-proj-abcdefghijklmnopqrstuvwx_yz",
	} {
		if !audit.SecretValue(v) {
			t.Errorf("SecretValue(%q) = false", v)
		}
	}
	for _, v := range []string{"hello world", "sk-1", "risk-assessment of the plan", "the bearer of bad news", "AKIA", "eyJ alone", "ghp_short"} {
		if audit.SecretValue(v) {
			t.Errorf("SecretValue(%q) = true", v)
		}
	}
}

func TestRedactDeep(t *testing.T) {
	in := map[string]any{
		"query":  "ok",
		"author": "ann",
		"nested": []any{
			map[string]any{"deeper": []any{map[string]any{"apiKey": "x", "note": "Bearer abcdefghijkl"}}},
			"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
			42.0,
			nil,
		},
		"headers": map[string]string{"Cookie": "a=b", "Accept": "text/html"},
		"list":    []string{"plain", "AKIAIOSFODNN7EXAMPLE"},
		"raw":     json.RawMessage(`{"password":"p","n":1}`),
	}
	out, _ := json.Marshal(audit.Redact(in))
	s := string(out)
	for _, leak := range []string{`"x"`, "abcdefghijkl", "ghp_", "a=b", "AKIA", `"p"`} {
		if strings.Contains(s, leak) {
			t.Errorf("redacted output leaks %s: %s", leak, s)
		}
	}
	for _, keep := range []string{`"query":"ok"`, `"author":"ann"`, `"Accept":"text/html"`, `"plain"`, `42`, `"n":1`} {
		if !strings.Contains(s, keep) {
			t.Errorf("redacted output lost %s: %s", keep, s)
		}
	}
	// The input is not modified.
	if in["nested"].([]any)[1] != "ghp_abcdefghijklmnopqrstuvwxyz0123456789" {
		t.Error("Redact modified its input")
	}
}

func TestSecretType(t *testing.T) {
	var buf bytes.Buffer
	slogTo(&buf).Info("x", "token", audit.Secret("hunter2"))
	if strings.Contains(buf.String(), "hunter2") || audit.Secret("hunter2").String() != audit.Redacted {
		t.Errorf("Secret leaked: %q", buf.String())
	}
}

func FuzzRedact(f *testing.F) {
	f.Add(`{"a":"Bearer abcdefghijk","b":[{"token":"x"}]}`)
	f.Add(`["AKIAIOSFODNN7EXAMPLE", 1, null, {"nested": {"password": 2}}]`)
	f.Add(`"sk-abcdefghijklmnopqrstuvwxyz"`)
	f.Fuzz(func(t *testing.T, doc string) {
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		out := audit.Redact(v)
		var walk func(any)
		walk = func(x any) {
			switch y := x.(type) {
			case string:
				if y != audit.Redacted && audit.SecretValue(y) {
					t.Fatalf("secret survived: %q", y)
				}
			case map[string]any:
				for k, val := range y {
					if audit.SensitiveKey(k) && val != audit.Redacted {
						t.Fatalf("value under %q survived: %v", k, val)
					}
					walk(val)
				}
			case []any:
				for _, val := range y {
					walk(val)
				}
			}
		}
		walk(out)
	})
}
