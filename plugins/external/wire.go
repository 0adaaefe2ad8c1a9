package external

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// MaxOutput caps what a plugin process may answer to one call.
const MaxOutput = 1 << 20

// maxStderr caps the stderr of one call (or, for a persistent process,
// of one line) that reaches the server's log.
const maxStderr = 16 << 10

// request is what a plugin process reads per call.
type request struct {
	// ID numbers the requests to a persistent process (from 1); a
	// process that copies it into its answer lets a late answer to an
	// abandoned call be told apart.
	ID        uint64          `json:"id,omitempty"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments"`
}

// response is what a plugin process writes per call.
type response struct {
	ID                *uint64         `json:"id"`
	Content           *[]contentItem  `json:"content"`
	IsError           bool            `json:"isError"`
	StructuredContent json.RawMessage `json:"structuredContent"`
}

type contentItem struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

func encodeRequest(call *plugin.Call, id uint64) ([]byte, error) {
	args := call.Arguments
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	// Compact, so a persistent process can read one request a line.
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return nil, fmt.Errorf("arguments: %w", err)
	}
	return json.Marshal(request{ID: id, Tool: call.Tool, Arguments: buf.Bytes()})
}

// errBadOutput is wrapped by every decoding failure of a plugin's answer.
var errBadOutput = errors.New("invalid output")

// decodeResponse reads one answer: a JSON object with a content list of
// text items, an optional isError and structuredContent, and nothing
// after it.
func decodeResponse(data []byte) (*plugin.Result, error) {
	r, _, err := decodeAnswer(data)
	return r, err
}

// decodeAnswer is decodeResponse, also returning the id the answer
// carries (nil when it has none).
func decodeAnswer(data []byte) (*plugin.Result, *uint64, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: nothing on stdout", errBadOutput)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var r response
	if err := dec.Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("%w: not a JSON object: %v", errBadOutput, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: more than one JSON value", errBadOutput)
	}
	if r.Content == nil {
		return nil, nil, fmt.Errorf("%w: no \"content\" list", errBadOutput)
	}
	var texts []string
	for i, c := range *r.Content {
		if c.Type != "text" || c.Text == nil {
			return nil, nil, fmt.Errorf("%w: content[%d] is not a text item (type %q)", errBadOutput, i, c.Type)
		}
		texts = append(texts, *c.Text)
	}
	res := &plugin.Result{Text: strings.Join(texts, "\n"), IsError: r.IsError}
	if len(r.StructuredContent) > 0 && string(r.StructuredContent) != "null" {
		if r.StructuredContent[0] != '{' {
			return nil, nil, fmt.Errorf("%w: structuredContent is not an object", errBadOutput)
		}
		res.Structured = r.StructuredContent
	}
	return res, r.ID, nil
}

// limited keeps the first n bytes written and counts the rest.
type limited struct {
	buf     bytes.Buffer
	n       int
	dropped int64
}

func (l *limited) Write(p []byte) (int, error) {
	room := l.n - l.buf.Len()
	if room < len(p) {
		if room > 0 {
			l.buf.Write(p[:room])
		}
		l.dropped += int64(len(p) - max(room, 0))
		return len(p), nil
	}
	return l.buf.Write(p)
}
