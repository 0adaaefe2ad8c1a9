package audit

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
)

// Redacted replaces a secret.
const Redacted = "[REDACTED]"

// sensitiveWords are matched against the words of a key, after splitting
// on case changes and separators: "X-Api-Key" is x/api/key, "sessionId" is
// session/id, "author" is author and so not "auth".
var sensitiveWords = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "passphrase": true,
	"secret": true, "secrets": true, "token": true, "tokens": true,
	"apikey": true, "auth": true, "authorization": true,
	"credential": true, "credentials": true, "cookie": true, "cookies": true,
	"session": true, "sessionid": true, "privatekey": true, "jwt": true,
	"bearer": true, "otp": true, "pin": true,
}

// sensitivePairs are two adjacent words that together are sensitive.
var sensitivePairs = map[[2]string]bool{
	{"api", "key"}: true, {"private", "key"}: true, {"access", "key"}: true,
	{"secret", "key"}: true, {"client", "secret"}: true, {"set", "cookie"}: true,
}

// secretValue matches strings that are or contain a credential.
var secretValue = regexp.MustCompile(strings.Join([]string{
	`(?i)\bbearer\s+[a-z0-9._~+/=-]{8,}`,
	`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,
	`-----BEGIN [A-Z ]*PRIVATE KEY-----`,
	`\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`,
	`\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}`,
	`\bgithub_pat_[A-Za-z0-9_]{20,}`,
	`\bxox[abprs]-[A-Za-z0-9-]{10,}`,
	`\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}`,
}, "|"))

// keyVerdicts memoises SensitiveKey for the keys seen most: argument and
// input keys repeat on every call. It stops growing at keyCacheLimit.
var (
	keyVerdicts   sync.Map // string -> bool
	keyCacheSize  atomic.Int64
	keyCacheLimit = int64(4096)
)

// SensitiveKey reports whether a value stored under key is a secret.
func SensitiveKey(key string) bool {
	if v, ok := keyVerdicts.Load(key); ok {
		return v.(bool)
	}
	verdict := sensitiveKey(key)
	if keyCacheSize.Load() < keyCacheLimit && len(key) <= 64 {
		if _, loaded := keyVerdicts.LoadOrStore(key, verdict); !loaded {
			keyCacheSize.Add(1)
		}
	}
	return verdict
}

func sensitiveKey(key string) bool {
	words := splitWords(key)
	for i, w := range words {
		if sensitiveWords[w] {
			return true
		}
		if i > 0 && sensitivePairs[[2]string{words[i-1], w}] {
			return true
		}
	}
	return sensitiveWords[strings.Join(words, "")]
}

// SecretValue reports whether s looks like or contains a credential.
func SecretValue(s string) bool { return secretValue.MatchString(s) }

func splitWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && len(cur) > 0 &&
			(unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

// Redact returns a copy of v, a decoded JSON value, with secrets replaced.
// json.RawMessage is decoded first; other Go values are passed through
// encoding/json.
func Redact(v any) any {
	switch x := v.(type) {
	case nil, bool, float64, int, int64, json.Number:
		return x
	case string:
		if SecretValue(x) {
			return Redacted
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if SensitiveKey(k) {
				out[k] = Redacted
			} else {
				out[k] = Redact(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = Redact(val)
		}
		return out
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = val
		}
		return Redact(m)
	case []string:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = Redact(val)
		}
		return out
	case json.RawMessage:
		return Redact(decode(x))
	default:
		data, err := json.Marshal(x)
		if err != nil {
			return Redacted
		}
		return Redact(decode(data))
	}
}

func decode(data []byte) any {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Redacted
	}
	return v
}

// Secret is a string that never shows itself in logs.
type Secret string

func (Secret) String() string { return Redacted }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
