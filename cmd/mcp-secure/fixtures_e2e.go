//go:build e2etools

package main

// Fixture tools compiled only into the end-to-end test build (go build
// -tags e2etools): thin tools over the Host's filesystem, command and
// network doors, so the tests can drive each guard through the real binary
// before a production plugin uses it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

func init() {
	plugin.Register("e2e-fixtures", func(h plugin.Host) (plugin.Plugin, error) { return fixtures{h}, nil })
}

type fixtures struct{ h plugin.Host }

func (fixtures) Info() plugin.Info { return plugin.Info{Name: "e2e-fixtures", Version: "0.0.0"} }

func (f fixtures) Tools() []plugin.Tool {
	return []plugin.Tool{
		{
			Name: "fixture_read", Category: "fixtures", Description: "Read a file (path annotated).",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string","format":"path"}},"required":["path"]}`),
			Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
				var a struct{ Path string }
				json.Unmarshal(c.Arguments, &a)
				data, err := f.h.Files().ReadFile(ctx, a.Path, 1<<20)
				if err != nil {
					return nil, fmt.Errorf("read: %w", err)
				}
				return &plugin.Result{Text: string(data)}, nil
			},
		},
		{
			Name: "fixture_read_plain", Category: "fixtures", Description: "Read a file (no annotation: decided at use only).",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"file":{"type":"string"}},"required":["file"]}`),
			Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
				var a struct{ File string }
				json.Unmarshal(c.Arguments, &a)
				data, err := f.h.Files().ReadFile(ctx, a.File, 1<<20)
				if err != nil {
					return nil, fmt.Errorf("read: %w", err)
				}
				return &plugin.Result{Text: string(data)}, nil
			},
		},
		{
			Name: "fixture_write", Category: "fixtures", Description: "Write a file.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string","format":"path","x-mcp-operation":"write"},"text":{"type":"string"}},"required":["path","text"]}`),
			Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
				var a struct{ Path, Text string }
				json.Unmarshal(c.Arguments, &a)
				if err := f.h.Files().WriteFile(ctx, a.Path, []byte(a.Text)); err != nil {
					return nil, fmt.Errorf("write: %w", err)
				}
				return &plugin.Result{Text: "written"}, nil
			},
		},
		{
			Name: "fixture_run", Category: "fixtures", Description: "Run a command.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"argv":{"type":"array","prefixItems":[{"type":"string","format":"command"}],"items":{"type":"string"},"minItems":1},"dir":{"type":"string","format":"path","x-mcp-operation":"list"}},"required":["argv"]}`),
			Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
				var a struct {
					Argv []string
					Dir  string
				}
				json.Unmarshal(c.Arguments, &a)
				res, err := f.h.Commands().Exec(ctx, a.Argv, plugin.ExecOptions{Dir: a.Dir})
				if err != nil {
					return nil, fmt.Errorf("run: %w", err)
				}
				return &plugin.Result{Text: string(res.Stdout), Structured: map[string]any{"exit_code": res.ExitCode, "stderr": string(res.Stderr)}}, nil
			},
		},
		{
			Name: "fixture_fetch", Category: "fixtures", Description: "GET a URL.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"url":{"type":"string","format":"uri"}},"required":["url"]}`),
			Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
				var a struct{ URL string }
				json.Unmarshal(c.Arguments, &a)
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
				if err != nil {
					return plugin.Errorf("bad url: %v", err), nil
				}
				resp, err := f.h.Network().HTTPClient(0).Do(req)
				if err != nil {
					return nil, fmt.Errorf("fetch: %w", err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				return &plugin.Result{Text: string(body)}, nil
			},
		},
	}
}
