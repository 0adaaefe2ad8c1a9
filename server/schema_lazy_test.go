package server

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lazyRuns counts the runs of the lazy-schema plugin's handlers.
var lazyRuns atomic.Int32

func init() {
	plugin.Register("lazy-schema-test", func(plugin.Host) (plugin.Plugin, error) { return lazySchemaPlugin{}, nil })
}

type lazySchemaPlugin struct{}

func (lazySchemaPlugin) Info() plugin.Info {
	return plugin.Info{Name: "lazy-schema-test", Version: "1"}
}

func (lazySchemaPlugin) Tools() []plugin.Tool {
	h := func(context.Context, *plugin.Call) (*plugin.Result, error) {
		lazyRuns.Add(1)
		return &plugin.Result{Text: "ran"}, nil
	}
	return []plugin.Tool{
		// An object schema the compiler refuses ("type" must be a
		// type name): it is compiled only when the tool is called.
		{Name: "broken_schema", InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"nope"}}}`), Handler: h},
		{Name: "lazy_ok", InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}`), Handler: h},
	}
}

// Tool schemas are compiled on first use, not at start, and that changes
// nothing about what runs: a schema that does not compile refuses every
// call of its tool (its handler never runs), and a good one validates
// from the first call on.
func TestToolSchemasCompiledOnFirstUse(t *testing.T) {
	aud := &fakeAuditor{}
	s, err := New(Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: aud,
		Plugins: []string{"lazy-schema-test"}})
	if err != nil {
		t.Fatalf("a schema that does not compile stops the start: %v", err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, tool string
		args       string
		ok         bool
		text       string
	}{
		{"deny/broken-schema", "broken_schema", `{"a":1}`, false, "invalid arguments"},
		{"deny/broken-schema-again", "broken_schema", `{}`, false, "invalid arguments"},
		{"deny/lazy-ok-invalid", "lazy_ok", `{"a":"x"}`, false, "invalid arguments"},
		{"deny/lazy-ok-extra", "lazy_ok", `{"b":1}`, false, "invalid arguments"},
		{"allow/lazy-ok", "lazy_ok", `{"a":1}`, true, "ran"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := lazyRuns.Load()
			res := callDirect(t, s, tc.tool, tc.args)
			if res.IsError == tc.ok || !strings.Contains(resultText(res), tc.text) {
				t.Errorf("isError %v, text %q; want ok=%v and %q", res.IsError, resultText(res), tc.ok, tc.text)
			}
			if ran := lazyRuns.Load() > before; ran != tc.ok {
				t.Errorf("handler ran: %v, want %v", ran, tc.ok)
			}
		})
	}
}

// A tool whose input schema is not an object schema is still refused at
// start.
func TestToolSchemaShapeCheckedAtStart(t *testing.T) {
	for name, raw := range map[string]string{
		"not-json":     `{"type":`,
		"not-object":   `{"type":"string"}`,
		"array":        `[]`,
		"type-missing": `{"properties":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := New(Options{Engine: &fakeDecider{}, Limiter: &fakeLimiter{}, Audit: &fakeAuditor{},
				Plugins: []string{}, Extra: []plugin.Plugin{shapePlugin{raw}}})
			if err == nil {
				srv.Close()
				t.Fatalf("schema %s was accepted", raw)
			}
			if !strings.Contains(err.Error(), `tool "shape"`) {
				t.Errorf("err = %v, want it to name the tool", err)
			}
		})
	}
}

type shapePlugin struct{ raw string }

func (shapePlugin) Info() plugin.Info { return plugin.Info{Name: "shape", Version: "1"} }

func (p shapePlugin) Tools() []plugin.Tool {
	return []plugin.Tool{{Name: "shape", InputSchema: json.RawMessage(p.raw),
		Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) { return &plugin.Result{Text: "ran"}, nil }}}
}

// callDirect calls tool on s through a client session over pipes.
func callDirect(t *testing.T, s *Server, tool, args string) *mcp.CallToolResult {
	t.Helper()
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	defer func() { cancel(); cOut.Close(); <-done }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "unit", Version: "9"}, nil).Connect(t.Context(),
		&mcp.IOTransport{Reader: cIn, Writer: cOut}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return res
}
