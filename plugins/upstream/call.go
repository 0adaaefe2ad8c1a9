package upstream

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// handler forwards an allowed, validated call to the upstream's tool
// name, whose definition state is state (the decision's input).
func (u *Upstream) handler(name string, state func() plugin.DefinitionState) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
		w, why := u.current()
		if w == nil {
			return plugin.Errorf("upstream server %q is not running (%s); it is being restarted, try again shortly", u.cfg.Name, why), nil
		}
		// The decision saw the definition pinned and offered; a listing
		// since may have changed it, or taken the tool away.
		if st := state(); st.Changed {
			u.mu.Lock()
			_, offered := u.hashes[name]
			u.mu.Unlock()
			if !offered {
				return plugin.Errorf("upstream server %q no longer offers tool %q", u.cfg.Name, name), nil
			}
			return plugin.Errorf("upstream server %q changed tool %q since the call was decided; calls are denied until it is approved", u.cfg.Name, name), nil
		}
		token, done := u.track(call)
		defer done()
		res, err := w.call(ctx, name, call.Arguments, token)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var refused *jsonrpc.Error
			switch {
			case errors.As(err, &refused):
				// The upstream answered with a protocol error.
				return plugin.Errorf("upstream server %q refused the call: %s", u.cfg.Name, refused.Message), nil
			case errors.Is(err, errOversize):
				return plugin.Errorf("upstream server %q sent a message over %d MiB; it is being restarted", u.cfg.Name, maxMessage>>20), nil
			case errors.Is(err, errGone), errors.Is(err, errBroken):
				// The process ended or the connection broke; the
				// supervisor restarts it.
				return plugin.Errorf("upstream server %q is not running (it stopped during the call); it is being restarted, try again shortly", u.cfg.Name), nil
			default:
				u.log.Warn("the upstream's answer could not be read", "tool", name, "err", err)
				return plugin.Errorf("upstream server %q answered with something that is not a tool result", u.cfg.Name), nil
			}
		}
		return res.convert(), nil
	}
}

// callResult is a tools/call result as far as we pass it on: content
// items are decoded into one shape whatever their type, binary data only
// measured, structured content kept as JSON.
type callResult struct {
	Content           []contentItem   `json:"content"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	IsError           bool            `json:"isError"`
}

// contentItem is any content type: text, image, audio, resource_link,
// resource.
type contentItem struct {
	Type     string        `json:"type"`
	Text     string        `json:"text"`
	MIMEType string        `json:"mimeType"`
	Data     base64Len     `json:"data"`
	URI      string        `json:"uri"`
	Resource *resourceItem `json:"resource"`
}

// resourceItem is an embedded resource.
type resourceItem struct {
	URI  string `json:"uri"`
	Text string `json:"text"`
}

// base64Len is the length of the bytes a base64 string encodes, which is
// all a result tells of an image or audio; the data itself is not kept.
type base64Len int

// UnmarshalJSON implements json.Unmarshaler.
func (n *base64Len) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' {
		*n = 0
		return nil
	}
	s := b[1 : len(b)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		// Escaped (unusual for base64): unquote first.
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		s = []byte(str)
	}
	s = bytes.TrimRight(s, "=")
	*n = base64Len(base64.RawStdEncoding.DecodedLen(len(s)))
	return nil
}

// convert turns an upstream result into ours: text content joined,
// other content named, structured content kept when it is an object.
func (res *callResult) convert() *plugin.Result {
	var parts []string
	for _, c := range res.Content {
		switch c.Type {
		case "text":
			parts = append(parts, c.Text)
		case "image":
			parts = append(parts, fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, c.Data))
		case "audio":
			parts = append(parts, fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, c.Data))
		case "resource_link":
			parts = append(parts, fmt.Sprintf("[resource %s]", c.URI))
		case "resource":
			if c.Resource != nil && c.Resource.Text != "" {
				parts = append(parts, c.Resource.Text)
			} else if c.Resource != nil {
				parts = append(parts, fmt.Sprintf("[resource %s]", c.Resource.URI))
			}
		}
	}
	var text string
	if len(parts) == 1 {
		text = parts[0]
	} else {
		text = strings.Join(parts, "\n")
	}
	if len(text) > MaxResultText {
		cut := MaxResultText
		for cut > MaxResultText-utf8.UTFMax && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "\n[truncated: the upstream's result exceeded 1 MiB]"
	}
	out := &plugin.Result{Text: text, IsError: res.IsError}
	// Structured content over the text's cap is left out (it cannot be
	// cut and stay valid), and the text says so.
	switch s := bytes.TrimSpace(res.StructuredContent); {
	case len(s) > MaxResultText:
		out.Text += fmt.Sprintf("\n[structured content left out: %d bytes, over 1 MiB]", len(s))
	case len(s) > 0 && s[0] == '{':
		if clean, ok := cleanJSON(s); ok {
			out.Structured = json.RawMessage(clean)
		} else {
			out.Text += "\n[structured content left out: not valid JSON]"
		}
	}
	return out
}

// cleanJSON is s as valid UTF-8 JSON: bytes that are not UTF-8 and
// escapes of lone surrogates (which strict parsers refuse) become U+FFFD,
// as in text content; numbers keep their digits. s is returned as it is
// when it holds neither.
func cleanJSON(s []byte) ([]byte, bool) {
	if utf8.Valid(s) && !bytes.Contains(s, []byte(`\ud`)) && !bytes.Contains(s, []byte(`\uD`)) {
		return s, true
	}
	dec := json.NewDecoder(bytes.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	out, err := json.Marshal(v)
	return out, err == nil
}
