package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
)

// Redacted stands for a secret where no fingerprint is wanted: the
// [Secret] type prints it.
const Redacted = "[REDACTED]"

// markerPrefix starts every replacement the redactor writes:
// "[REDACTED:" + 16 hex digits of fingerprint + "]".
const markerPrefix = "[REDACTED:"

// markerLen is the length of one replacement.
const markerLen = len(markerPrefix) + 16 + 1

// IsMarker reports whether s is exactly one replacement written by a
// Redactor.
func IsMarker(s string) bool {
	if len(s) != markerLen || !strings.HasPrefix(s, markerPrefix) || s[markerLen-1] != ']' {
		return false
	}
	for _, c := range []byte(s[len(markerPrefix) : markerLen-1]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// A Redactor replaces secrets with a marker carrying a fingerprint: the
// first 8 bytes of HMAC-SHA256 of the secret under the Redactor's key, in
// hex. The same secret under the same key always gets the same marker, so
// records can be correlated; without the key a fingerprint cannot be
// checked against a guess.
type Redactor struct {
	macs sync.Pool // hash.Hash keyed with the installation key
}

// NewRedactor returns a Redactor fingerprinting under key. A nil or empty
// key means a random key for this process: fingerprints then correlate
// only within the process.
func NewRedactor(key []byte) *Redactor {
	if len(key) == 0 {
		key = make([]byte, keySize)
		_, _ = rand.Read(key) // crypto/rand.Read never fails
	}
	key = bytes.Clone(key)
	r := &Redactor{}
	r.macs.New = func() any { return hmac.New(sha256.New, key) }
	return r
}

// defaultRedactor serves the package-level functions.
var defaultRedactor = NewRedactor(nil)

// Fingerprint is the 16 hex digits a marker carries for secret.
func (r *Redactor) Fingerprint(secret string) string {
	m := r.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(secret))
	var sum [sha256.Size]byte
	out := m.Sum(sum[:0])
	r.macs.Put(m)
	return hex.EncodeToString(out[:8])
}

func (r *Redactor) marker(secret string) string {
	return markerPrefix + r.Fingerprint(secret) + "]"
}

// String returns s with every secret-shaped part replaced by a marker;
// the rest of s stays as it was, so a string cannot hide what it says by
// carrying something that looks like a credential.
func (r *Redactor) String(s string) string {
	var buf [8][2]int
	spans := findSecrets(s, buf[:0])
	if len(spans) == 0 {
		return s
	}
	return r.replace(s, spans)
}

func (r *Redactor) replace(s string, spans [][2]int) string {
	var b strings.Builder
	b.Grow(len(s) + len(spans)*markerLen)
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp[0]])
		b.WriteString(r.marker(s[sp[0]:sp[1]]))
		last = sp[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// Value returns a copy of v, a decoded JSON value, with secrets replaced:
// values under sensitive keys whole (a marker fingerprinting the value's
// JSON), secret-shaped parts of every other string and of every key.
// json.RawMessage is decoded first; other Go values go through
// encoding/json.
func (r *Redactor) Value(v any) any {
	w := walker{r: r}
	out, _ := w.walk(v, false)
	return out
}

// RedactString replaces the secret-shaped parts of s, fingerprinted under
// the process key.
func RedactString(s string) string { return defaultRedactor.String(s) }

// Redact is [Redactor.Value] under the process key.
func Redact(v any) any { return defaultRedactor.Value(v) }

// SecretValue reports whether s contains a secret-shaped part.
func SecretValue(s string) bool {
	var buf [4][2]int
	return len(findSecrets(s, buf[:0])) > 0
}

// whole returns the marker for a value stored under a sensitive key.
func (r *Redactor) whole(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if IsMarker(x) {
			return x
		}
		return r.marker(x)
	default:
		data, err := json.Marshal(x)
		if err != nil {
			return r.marker("")
		}
		return r.marker(string(data))
	}
}

// Keys.

// sensitiveWords are matched against the words of a key, after splitting
// on case changes and separators: "X-Api-Key" is x/api/key, "sessionId" is
// session/id, "author" is author and so not "auth", "passenger" is not
// "pass".
var sensitiveWords = map[string]bool{
	"password": true, "passwords": true, "passwd": true, "pwd": true, "passphrase": true,
	"pass": true, "passcode": true, "secret": true, "secrets": true,
	"token": true, "tokens": true, "apikey": true, "auth": true, "authorization": true,
	"credential": true, "credentials": true, "creds": true, "cookie": true, "cookies": true,
	"session": true, "sessionid": true, "privatekey": true, "privkey": true,
	"jwt": true, "bearer": true, "otp": true, "totp": true, "pin": true,
	"refresh": true, "dsn": true, "cvv": true, "ssn": true,
	"connectionstring": true, "secretkey": true, "sshkey": true,
}

// sensitivePairs are two adjacent words that together are sensitive.
var sensitivePairs = map[[2]string]bool{
	{"api", "key"}: true, {"private", "key"}: true, {"access", "key"}: true,
	{"secret", "key"}: true, {"client", "secret"}: true, {"set", "cookie"}: true,
	{"ssh", "key"}: true, {"signing", "key"}: true, {"encryption", "key"}: true,
	{"master", "key"}: true, {"deploy", "key"}: true, {"session", "key"}: true,
	{"shared", "key"}: true, {"gpg", "key"}: true, {"pgp", "key"}: true, {"hmac", "key"}: true,
	{"mfa", "code"}: true, {"recovery", "code"}: true, {"backup", "code"}: true,
	{"verification", "code"}: true, {"connection", "string"}: true, {"user", "pass"}: true,
}

// neutralLast are last words that turn a key about a secret into a key
// about something else: token_count, password_policy_url, secret_name and
// token_expires_at hold no secret.
var neutralLast = map[string]bool{
	"count": true, "counts": true, "limit": true, "limits": true, "max": true, "min": true,
	"length": true, "len": true, "size": true, "type": true, "types": true, "kind": true,
	"policy": true, "policies": true, "url": true, "uri": true, "endpoint": true,
	"expiry": true, "expires": true, "expiration": true, "ttl": true, "lifetime": true,
	"at": true, "hint": true, "required": true, "enabled": true, "disabled": true,
	"format": true, "strength": true, "rule": true, "rules": true, "interval": true,
	"timeout": true, "name": true, "file": true, "path": true, "usage": true, "used": true,
	"total": true, "version": true, "method": true, "mode": true, "scheme": true,
	"provider": true, "field": true, "label": true,
}

// neutralFirst are first words that do the same: max_tokens, num_tokens.
var neutralFirst = map[string]bool{"max": true, "min": true, "num": true, "total": true, "count": true}

// keyVerdicts memoises SensitiveKey for the keys seen most: argument and
// input keys repeat on every call. It stops growing at keyCacheLimit.
var (
	keyVerdicts   sync.Map // string -> bool
	keyCacheSize  atomic.Int64
	keyCacheLimit = int64(4096)
)

// SensitiveKey reports whether a value stored under key is a secret.
func SensitiveKey(key string) bool {
	if len(key) > 128 {
		return sensitiveKey(key)
	}
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
	if len(words) == 0 || len(words) > 1 && (neutralLast[words[len(words)-1]] || neutralFirst[words[0]]) {
		return false
	}
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

// Values.
//
// findSecrets scans s once and appends the byte spans of its secret-shaped
// parts, in order and without overlap. Each shape is matched by hand at
// its trigger (a word start, "://", "=" or ":", "-----BEGIN "), so a
// string without a trigger costs one pass over its bytes.

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// run returns the end of the run of bytes in class starting at i.
func run(s string, i int, class func(byte) bool) int {
	for i < len(s) && class(s[i]) {
		i++
	}
	return i
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func tokenChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' || c == '-'
}

func base64Char(c byte) bool { return isAlnum(c) || c == '+' || c == '/' || c == '=' }

func dashWord(c byte) bool { return isWord(c) || c == '-' }

// wordTrigger marks the bytes a secret-shaped word can start with.
var wordTrigger = func() (t [256]bool) {
	for _, c := range []byte("bBAaegxsrwn") {
		t[c] = true
	}
	return t
}()

// scanTrigger marks the bytes findSecrets stops at: word bytes, and the
// punctuation that can start or carry a shape.
var scanTrigger = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isWord(byte(c))
	}
	t[':'], t['='], t['-'] = true, true, true
	return t
}()

// wordTable marks word bytes.
var wordTable = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isWord(byte(c))
	}
	return t
}()

// secondByte lists, by a shape's first byte, the bytes that may follow
// it: "bearer"/"basic", "AKIA"/"ASIA"/"AIza", "eyJ", "ghp_"/"github_pat_"/
// "glpat-", "xox", "sk-"/"sk_", "rk_", "whsec_", "npm_".
var secondByte = [256]string{'b': "eaEA", 'B': "eaEA", 'A': "KSI", 'e': "y", 'g': "hil", 'x': "o", 's': "k", 'r': "k", 'w': "h", 'n': "p"}

func skipAlnum(s string, i int) int {
	for i < len(s) && wordTable[s[i]] && s[i] != '_' {
		i++
	}
	return i
}

func findSecrets(s string, spans [][2]int) [][2]int {
	for i := 0; i < len(s); {
		c := s[i]
		if !scanTrigger[c] {
			i++
			continue
		}
		end := -1
		switch {
		case wordTable[c]:
			if c == '_' {
				i++
				continue
			}
			if i > 0 && isAlnum(s[i-1]) || !wordTrigger[c] || i+1 >= len(s) ||
				strings.IndexByte(secondByte[c], s[i+1]) < 0 {
				// Not the start of a word that can be a secret: skip the
				// word, up to an underscore (tool_ghp_... holds a token).
				i = skipAlnum(s, i+1)
				continue
			}
			end, spans = matchWord(s, i, spans)
			if end < 0 {
				end = skipAlnum(s, i+1)
			}
		case c == ':' && strings.HasPrefix(s[i:], "://"):
			end, spans = matchURL(s, i, spans)
		case c == '=' || c == ':':
			end, spans = matchAssign(s, i, spans)
		case c == '-' && strings.HasPrefix(s[i:], "-----BEGIN "):
			end, spans = matchPEM(s, i, spans)
		}
		if end > i {
			i = end
		} else {
			i++
		}
	}
	return spans
}

// add appends the span [from, to) unless it is empty or already a marker.
func add(s string, spans [][2]int, from, to int) [][2]int {
	if to <= from || IsMarker(s[from:to]) {
		return spans
	}
	return append(spans, [2]int{from, to})
}

// matchWord tries the shapes that start a word at i: schemes (Bearer,
// Basic) and vendor token prefixes.
func matchWord(s string, i int, spans [][2]int) (int, [][2]int) {
	rest := s[i:]
	// prefixed matches a vendor token: prefix, then at least min bytes
	// of class, ending at a non-word byte.
	prefixed := func(prefix string, min int, class func(byte) bool) int {
		if !strings.HasPrefix(rest, prefix) {
			return -1
		}
		e := run(s, i+len(prefix), class)
		if e-i-len(prefix) < min {
			return -1
		}
		return e
	}
	switch c := s[i] | 0x20; c {
	case 'b':
		for _, scheme := range []string{"bearer", "basic"} {
			if !hasPrefixFold(rest, scheme) {
				continue
			}
			j := run(s, i+len(scheme), isSpace)
			if j == i+len(scheme) {
				continue
			}
			class := tokenChar
			if scheme == "basic" {
				class = base64Char
			}
			e := run(s, j, class)
			if e-j < 8 || scheme == "basic" && !basicCredential(s[j:e]) || scheme == "bearer" && plainWord(s[j:e]) {
				continue
			}
			return e, add(s, spans, j, e)
		}
	case 'a':
		if strings.HasPrefix(rest, "AKIA") || strings.HasPrefix(rest, "ASIA") {
			e := run(s, i+4, func(b byte) bool { return b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' })
			if e-i == 20 && (e == len(s) || !isWord(s[e])) {
				spans = add(s, spans, i, e)
				return matchAWSSecret(s, e, spans)
			}
		}
		if e := prefixed("AIza", 30, dashWord); e > 0 {
			return e, add(s, spans, i, e)
		}
	case 'e':
		if strings.HasPrefix(rest, "eyJ") {
			e1 := run(s, i+3, dashWord)
			if e1-i-3 >= 5 && strings.HasPrefix(s[e1:], ".eyJ") {
				e2 := run(s, e1+4, dashWord)
				if e2-e1-4 >= 5 && e2 < len(s) && s[e2] == '.' {
					e := run(s, e2+1, dashWord)
					return e, add(s, spans, i, e)
				}
			}
		}
	case 'g':
		for _, p := range []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"} {
			if e := prefixed(p, 20, isAlnum); e > 0 {
				return e, add(s, spans, i, e)
			}
		}
		if e := prefixed("github_pat_", 20, isWord); e > 0 {
			return e, add(s, spans, i, e)
		}
		if e := prefixed("glpat-", 20, dashWord); e > 0 {
			return e, add(s, spans, i, e)
		}
	case 'x':
		if len(rest) > 5 && strings.HasPrefix(rest, "xox") && strings.IndexByte("abprs", rest[3]) >= 0 && rest[4] == '-' {
			if e := run(s, i+5, func(b byte) bool { return isAlnum(b) || b == '-' }); e-i-5 >= 10 {
				return e, add(s, spans, i, e)
			}
		}
	case 's', 'r':
		if e := prefixed("sk-proj-", 20, dashWord); e > 0 {
			return e, add(s, spans, i, e)
		}
		if e := prefixed("sk-", 20, dashWord); e > 0 {
			return e, add(s, spans, i, e)
		}
		for _, p := range []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_"} {
			if e := prefixed(p, 10, isAlnum); e > 0 {
				return e, add(s, spans, i, e)
			}
		}
	case 'w':
		if e := prefixed("whsec_", 20, isAlnum); e > 0 {
			return e, add(s, spans, i, e)
		}
	case 'n':
		if e := prefixed("npm_", 30, isAlnum); e > 0 {
			return e, add(s, spans, i, e)
		}
	}
	return -1, spans
}

// plainWord reports whether a Bearer candidate is an ordinary word ("the
// bearer instrument"): lower-case letters only, shorter than 16.
func plainWord(w string) bool {
	if len(w) >= 16 {
		return false
	}
	for _, c := range []byte(w) {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// basicCredential reports whether b64 decodes to user:password.
func basicCredential(b64 string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if dec, err := enc.DecodeString(b64); err == nil {
			return bytes.IndexByte(dec, ':') > 0
		}
	}
	return false
}

// matchAWSSecret takes the 40-byte secret access key that follows an
// access key id (AKIA... then a separator then the secret).
func matchAWSSecret(s string, i int, spans [][2]int) (int, [][2]int) {
	j := run(s, i, func(b byte) bool { return isSpace(b) || strings.IndexByte(`:,;='"`, b) >= 0 })
	if j == i || j-i > 8 {
		return i, spans
	}
	e := run(s, j, func(b byte) bool { return isAlnum(b) || b == '/' || b == '+' })
	if e-j != 40 || e < len(s) && s[e] == '=' {
		return i, spans
	}
	return e, add(s, spans, j, e)
}

// matchURL takes the password of a URL's userinfo (scheme://user:pw@host):
// the user name and host stay.
func matchURL(s string, i int, spans [][2]int) (int, [][2]int) {
	if i == 0 || !isAlnum(s[i-1]) {
		return -1, spans
	}
	a := i + 3
	e := a
	for e < len(s) && strings.IndexByte("/?#\"'<>\\ \t\r\n", s[e]) < 0 {
		e++
	}
	at := strings.LastIndexByte(s[a:e], '@')
	if at < 0 {
		return a, spans
	}
	colon := strings.IndexByte(s[a:a+at], ':')
	if colon < 0 || strings.HasPrefix(s[a:], markerPrefix) {
		return a + at + 1, spans
	}
	return a + at + 1, add(s, spans, a+colon+1, a+at)
}

// authSchemes are the words that may precede a credential in an
// Authorization-like value: the credential after them is replaced.
var authSchemes = []string{"basic", "bearer", "token", "digest", "negotiate", "ntlm", "hmac", "apikey"}

// matchAssign takes the value of key=value or key: value when key is
// sensitive: password=..., "api_key": "...", Authorization: Basic ...,
// Password=...; in connection strings.
func matchAssign(s string, i int, spans [][2]int) (int, [][2]int) {
	// The key: back over spaces and quotes, then key bytes.
	j := i
	for n := 0; j > 0 && n < 4 && (s[j-1] == ' ' || s[j-1] == '\t'); n++ {
		j--
	}
	for n := 0; j > 0 && n < 3 && (s[j-1] == '"' || s[j-1] == '\'' || s[j-1] == '\\'); n++ {
		j--
	}
	k := j
	for k > 0 && j-k < 64 && (isWord(s[k-1]) || s[k-1] == '-' || s[k-1] == '.') {
		k--
	}
	if k == j || !SensitiveKey(s[k:j]) {
		return -1, spans
	}
	// The value: after spaces, quoted (to its closing quote) or bare (to a
	// delimiter).
	v := run(s, i+1, func(b byte) bool { return b == ' ' || b == '\t' })
	var quote string
	switch {
	case v+1 < len(s) && s[v] == '\\' && (s[v+1] == '"' || s[v+1] == '\''):
		quote = s[v : v+2]
	case v < len(s) && (s[v] == '"' || s[v] == '\''):
		quote = s[v : v+1]
	}
	v += len(quote)
	var e int
	if quote != "" {
		e = strings.Index(s[v:], quote)
		if e < 0 {
			e = len(s)
		} else {
			e += v
		}
	} else {
		e = v
		for e < len(s) && strings.IndexByte(" \t\r\n\"'\\;&,<>){", s[e]) < 0 {
			e++
		}
	}
	from := v
	for _, scheme := range authSchemes {
		if hasPrefixFold(s[v:], scheme) && v+len(scheme) < len(s) && isSpace(s[v+len(scheme)]) {
			from = run(s, v+len(scheme), isSpace)
			if quote == "" {
				for e = from; e < len(s) && strings.IndexByte(" \t\r\n\"'\\;&,<>){", s[e]) < 0; e++ {
				}
			}
			break
		}
	}
	return max(e, i+1), add(s, spans, from, e)
}

// matchPEM takes the body of a PEM private key, up to its END line or the
// end of the string; the BEGIN and END lines stay.
func matchPEM(s string, i int, spans [][2]int) (int, [][2]int) {
	head := s[i+len("-----BEGIN "):]
	n := 0
	for n < len(head) && n < 40 && (head[n] >= 'A' && head[n] <= 'Z' || head[n] == ' ') {
		n++
	}
	if !strings.HasSuffix(head[:n], "PRIVATE KEY") || !strings.HasPrefix(head[n:], "-----") {
		return -1, spans
	}
	from := i + len("-----BEGIN ") + n + len("-----")
	to := len(s)
	if end := strings.Index(s[from:], "-----END "); end >= 0 {
		to = from + end
	}
	// Keep the line breaks around the body.
	b, e := from, to
	for b < e && isSpace(s[b]) {
		b++
	}
	for e > b && isSpace(s[e-1]) {
		e--
	}
	return to, add(s, spans, b, e)
}

// Secret is a string that never shows itself in logs.
type Secret string

func (Secret) String() string { return Redacted }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
