package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// handler forwards an allowed, validated call to the upstream's tool
// name.
func (u *Upstream) handler(name string) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
		cs, why := u.current()
		if cs == nil {
			return plugin.Errorf("upstream server %q is not running (%s); it is being restarted, try again shortly", u.cfg.Name, why), nil
		}
		u.mu.Lock()
		_, offered := u.hashes[name]
		u.mu.Unlock()
		if !offered {
			return plugin.Errorf("upstream server %q no longer offers tool %q", u.cfg.Name, name), nil
		}
		params := &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(call.Arguments)}
		done := u.track(call, params)
		defer done()
		res, err := cs.CallTool(ctx, params)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var wire *jsonrpc.Error
			if errors.As(err, &wire) {
				// The upstream answered with a protocol error.
				return plugin.Errorf("upstream server %q refused the call: %s", u.cfg.Name, wire.Message), nil
			}
			// The connection is gone: the process ended or broke the
			// protocol; the supervisor restarts it.
			return plugin.Errorf("upstream server %q is not running (it stopped during the call); it is being restarted, try again shortly", u.cfg.Name), nil
		}
		return convert(res), nil
	}
}

// convert turns an upstream result into ours: text content joined,
// other content named, structured content kept when it is an object.
func convert(res *mcp.CallToolResult) *plugin.Result {
	var parts []string
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			parts = append(parts, c.Text)
		case *mcp.ImageContent:
			parts = append(parts, fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *mcp.AudioContent:
			parts = append(parts, fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *mcp.ResourceLink:
			parts = append(parts, fmt.Sprintf("[resource %s]", c.URI))
		case *mcp.EmbeddedResource:
			if c.Resource != nil && c.Resource.Text != "" {
				parts = append(parts, c.Resource.Text)
			} else if c.Resource != nil {
				parts = append(parts, fmt.Sprintf("[resource %s]", c.Resource.URI))
			}
		}
	}
	text := strings.Join(parts, "\n")
	if len(text) > MaxResultText {
		text = text[:MaxResultText] + "\n[truncated: the upstream's result exceeded 1 MiB]"
	}
	out := &plugin.Result{Text: text, IsError: res.IsError}
	if m, ok := res.StructuredContent.(map[string]any); ok {
		out.Structured = m
	}
	return out
}
