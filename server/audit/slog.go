package audit

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// RedactLogLine returns s fit for a log line on stderr: every URL in it
// loses its userinfo and the values of its query (the keys stay), and the
// secret-shaped parts of the rest are replaced.
func (r *Redactor) RedactLogLine(s string) string {
	if strings.Contains(s, "://") {
		s = r.urls(s)
	}
	return r.String(s)
}

// RedactLogLine is [Redactor.RedactLogLine] under the process key.
func RedactLogLine(s string) string { return defaultRedactor.RedactLogLine(s) }

// urls rewrites each scheme://... in s.
func (r *Redactor) urls(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+3 <= len(s); i++ {
		if s[i] != ':' || !strings.HasPrefix(s[i:], "://") || i == 0 || !isAlnum(s[i-1]) {
			continue
		}
		a := i + 3
		e := a
		for e < len(s) && strings.IndexByte("\"'<>\\` \t\r\n", s[e]) < 0 {
			e++
		}
		b.WriteString(s[last:a])
		u := s[a:e]
		// Userinfo: everything before the last @ of the authority.
		auth := len(u)
		if k := strings.IndexAny(u, "/?#"); k >= 0 {
			auth = k
		}
		if at := strings.LastIndexByte(u[:auth], '@'); at >= 0 {
			if IsMarker(u[:at]) {
				b.WriteString(u[:at])
			} else {
				b.WriteString(r.marker(u[:at]))
			}
			u = u[at:]
		}
		// Query values.
		if q := strings.IndexByte(u, '?'); q >= 0 {
			frag := ""
			query := u[q+1:]
			if h := strings.IndexByte(query, '#'); h >= 0 {
				query, frag = query[:h], query[h:]
			}
			b.WriteString(u[:q+1])
			for j, kv := range strings.Split(query, "&") {
				if j > 0 {
					b.WriteByte('&')
				}
				k, v, ok := strings.Cut(kv, "=")
				b.WriteString(k)
				if ok {
					b.WriteByte('=')
					if v != "" && !IsMarker(v) {
						v = r.marker(v)
					}
					b.WriteString(v)
				}
			}
			b.WriteString(frag)
		} else {
			b.WriteString(u)
		}
		last, i = e, e-1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// RedactingHandler wraps a slog.Handler: the message and every string
// attribute go through RedactLogLine, values under sensitive keys are
// replaced whole, and errors and other values are redacted as their text.
type RedactingHandler struct {
	h   slog.Handler
	red *atomic.Pointer[Redactor] // shared with the handlers derived from it
}

var _ slog.Handler = (*RedactingHandler)(nil)

// NewRedactingHandler wraps h; a nil r means the process key.
func NewRedactingHandler(h slog.Handler, r *Redactor) *RedactingHandler {
	if r == nil {
		r = defaultRedactor
	}
	p := new(atomic.Pointer[Redactor])
	p.Store(r)
	return &RedactingHandler{h: h, red: p}
}

// UseRedactor switches this handler, and those derived from it, to r:
// once the server has loaded its fingerprint key, stderr and the audit log
// fingerprint alike.
func (h *RedactingHandler) UseRedactor(r *Redactor) { h.red.Store(r) }

func (h *RedactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.h.Enabled(ctx, l)
}

// maxLogValue caps a message or attribute on stderr: a client's 1 MB tool
// name must not become a 1 MB log line.
const maxLogValue = 1024

func (h *RedactingHandler) line(s string) string {
	s = h.red.Load().RedactLogLine(s)
	if len(s) > maxLogValue {
		cut := maxLogValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "...(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

func (h *RedactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.line(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *RedactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &RedactingHandler{h: h.h.WithAttrs(red), red: h.red}
}

func (h *RedactingHandler) WithGroup(name string) slog.Handler {
	return &RedactingHandler{h: h.h.WithGroup(name), red: h.red}
}

// idKeys are the server's own identifiers: they correlate stderr with the
// audit log and are not secrets, whatever their names say.
var idKeys = map[string]bool{"session_id": true, "decision_id": true, "request_id": true}

func (h *RedactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	key := h.line(a.Key)
	switch {
	case SensitiveKey(a.Key) && !idKeys[a.Key] && v.Kind() == slog.KindGroup:
		// A group under a sensitive key is its value, whole.
		return slog.String(key, h.red.Load().marker(v.String()))
	case v.Kind() == slog.KindGroup:
		as := v.Group()
		red := make([]slog.Attr, len(as))
		for i, g := range as {
			red[i] = h.attr(g)
		}
		return slog.Attr{Key: key, Value: slog.GroupValue(red...)}
	case SensitiveKey(a.Key) && !idKeys[a.Key]:
		return slog.String(key, h.red.Load().marker(v.String()))
	case v.Kind() == slog.KindString:
		return slog.String(key, h.line(v.String()))
	case v.Kind() == slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(key, h.line(err.Error()))
		}
		return slog.String(key, h.line(v.String()))
	}
	return slog.Attr{Key: key, Value: v}
}
