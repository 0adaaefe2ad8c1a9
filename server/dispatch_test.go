package server

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// dynServer serves a dynPlugin offering names to a connected client.
func dynServer(t *testing.T, aud *fakeAuditor, names ...string) (*Server, *dynPlugin, *mcp.ClientSession) {
	t.Helper()
	dyn := &dynPlugin{names: names}
	s, err := New(Options{Engine: toolsEngine(t), Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: aud,
		Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{dyn}})
	if err != nil {
		t.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	client := mcp.NewClient(&mcp.Implementation{Name: "unit", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.IOTransport{Reader: cIn, Writer: cOut}, nil)
	if err != nil {
		cancel()
		cOut.Close()
		<-done
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); cancel(); cOut.Close(); <-done })
	return s, dyn, cs
}

// A call is dispatched from the pipeline's tool table alone: a tool that
// table holds runs (and is audited) even while the SDK's table does not
// hold it yet, as during a refresh; one it lacks is decided and audited,
// not answered with a protocol error, even while the SDK's table still
// holds it.
func TestCallsDispatchFromThePipelineTable(t *testing.T) {
	aud := &fakeAuditor{}
	s, _, cs := dynServer(t, aud, "dyn_a", "dyn_gone")
	s.dyn.Lock()
	// Half way through a refresh: dyn_b added to ours only, dyn_gone
	// removed from ours only.
	sch := newToolSchema("dyn_b", json.RawMessage(`{"type":"object"}`))
	s.pipe.tools.put(&registeredTool{Tool: plugin.Tool{Name: "dyn_b", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) {
			return &plugin.Result{Text: "ran dyn_b"}, nil
		}}, plugin: "dyn", schema: sch})
	s.pipe.tools.del("dyn_gone")
	s.dyn.Unlock()
	for _, tc := range []struct {
		tool    string
		isError bool
		text    string
	}{
		{"dyn_b", false, "ran dyn_b"},
		{"dyn_gone", true, "not registered"},
	} {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tc.tool, Arguments: map[string]any{}})
		if err != nil {
			t.Fatalf("%s: a protocol error, no decision: %v", tc.tool, err)
		}
		if res.IsError != tc.isError || !containsText(res, tc.text) {
			t.Errorf("%s: result %q (error %v), want %q", tc.tool, resultText(res), res.IsError, tc.text)
		}
	}
	aud.mu.Lock()
	defer aud.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range aud.recs {
		seen[r.Tool] = true
	}
	if !seen["dyn_b"] || !seen["dyn_gone"] {
		t.Errorf("audited tools = %v, want dyn_b and dyn_gone", seen)
	}
}

// A tool replaced by a refresh is the one a policy reload adds again to
// announce a change, not its old definition.
func TestReplacedToolIsTheOneAnnouncedAgain(t *testing.T) {
	s, dyn, cs := dynServer(t, &fakeAuditor{}, "dyn_a")
	info := dyn.Info()
	t2 := dyn.Tools()[0]
	t2.Description = "tool dyn_a, second version"
	s.dyn.Lock()
	err := s.putTool(info, t2)
	s.dyn.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.notifyToolsChanged()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 1 || res.Tools[0].Description != t2.Description {
		var got []string
		for _, tl := range res.Tools {
			got = append(got, tl.Description)
		}
		t.Errorf("tools/list descriptions after a reload = %q, want %q", got, t2.Description)
	}
}

func containsText(res *mcp.CallToolResult, s string) bool {
	return strings.Contains(resultText(res), s)
}
