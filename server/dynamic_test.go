package server

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// dynPlugin's tools change while the server runs; its "dyn_work" tool
// sends progress and a log message to the calling session.
type dynPlugin struct {
	mu      sync.Mutex
	names   []string
	watch   func()
	pending string
}

var (
	_ plugin.Changing = (*dynPlugin)(nil)
	_ plugin.Pending  = (*dynPlugin)(nil)
)

func (p *dynPlugin) Info() plugin.Info { return plugin.Info{Name: "dyn", Version: "0.0.1"} }

func (p *dynPlugin) Tools() []plugin.Tool {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []plugin.Tool
	for _, n := range p.names {
		out = append(out, plugin.Tool{Name: n, Description: "tool " + n, InputSchema: json.RawMessage(`{"type":"object"}`),
			Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
				if c.Progress != nil {
					c.Progress(ctx, 1, 2, "half, token=ghp_abcdefghijklmnopqrstuvwxyz0123456789")
				}
				if c.Session != nil {
					c.Session.Log(ctx, "warning", "dyn", map[string]any{"msg": "careful", "password": "hunter2"})
				}
				return &plugin.Result{Text: "ran " + n}, nil
			}})
	}
	return out
}

func (p *dynPlugin) Watch(changed func()) { p.mu.Lock(); p.watch = changed; p.mu.Unlock() }

func (p *dynPlugin) Pending(tool string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.HasPrefix(tool, "dyn_") && !slices.Contains(p.names, tool) {
		return p.pending
	}
	return ""
}

func (p *dynPlugin) set(names ...string) {
	p.mu.Lock()
	p.names = names
	w := p.watch
	p.mu.Unlock()
	w()
}

// A plugin's tools that change while the server runs are registered and
// announced with notifications/tools/list_changed; progress and log
// messages of a call reach its session, redacted.
func TestChangingPluginToolsAndCallNotifications(t *testing.T) {
	dyn := &dynPlugin{names: []string{"dyn_a"}, pending: "its server has not come up yet"}
	s, err := New(Options{Engine: toolsEngine(t), Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: &fakeAuditor{},
		Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{dyn}})
	if err != nil {
		t.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	changed := make(chan struct{}, 8)
	var mu sync.Mutex
	var got []string
	note := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
	client := mcp.NewClient(&mcp.Implementation{Name: "unit", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			note("progress " + r.Params.ProgressToken.(string) + " " + r.Params.Message)
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			raw, _ := json.Marshal(r.Params.Data)
			note("log " + string(r.Params.Level) + " " + string(raw))
		},
	})
	cs, err := client.Connect(t.Context(), &mcp.IOTransport{Reader: cIn, Writer: cOut}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); cancel(); cOut.Close(); <-done })
	if caps := cs.InitializeResult().Capabilities; caps.Logging == nil {
		t.Errorf("capabilities = %+v, want logging", caps)
	}
	list := func() []string {
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		slices.Sort(names)
		return names
	}
	waitChanged := func() {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no notifications/tools/list_changed")
		}
	}
	callTool := func(name string) *mcp.CallToolResult {
		t.Helper()
		p := &mcp.CallToolParams{Name: name, Arguments: map[string]any{}}
		p.SetProgressToken("client-token")
		res, err := cs.CallTool(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if l := list(); !slices.Equal(l, []string{"dyn_a"}) {
		t.Fatalf("tools = %v", l)
	}
	// A pending tool the policy allows is unavailable, not denied: the
	// client is told to come back.
	res := callTool("dyn_b")
	if !res.IsError || !strings.Contains(resultText(res), `tool "dyn_b" is not available yet: its server has not come up yet`) {
		t.Fatalf("call to a pending tool = %q", resultText(res))
	}
	if sc, _ := res.StructuredContent.(map[string]any); sc["error"] != "unavailable" || sc["target"] != "dyn_b" {
		t.Errorf("structured content of a pending tool's call = %v, want error unavailable", res.StructuredContent)
	}

	// Its server is up: nothing is pending any more.
	dyn.mu.Lock()
	dyn.pending = ""
	dyn.mu.Unlock()
	dyn.set("dyn_a", "dyn_b")
	waitChanged()
	if l := list(); !slices.Equal(l, []string{"dyn_a", "dyn_b"}) {
		t.Fatalf("tools after adding = %v", l)
	}
	if err := cs.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if res := callTool("dyn_b"); res.IsError || resultText(res) != "ran dyn_b" {
		t.Fatalf("call to the added tool = %q", resultText(res))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	all := strings.Join(got, "\n")
	mu.Unlock()
	if !strings.Contains(all, "progress client-token half") || !strings.Contains(all, `log warning {"msg":"careful"`) {
		t.Errorf("notifications = %s", all)
	}
	if strings.Contains(all, "hunter2") || strings.Contains(all, "ghp_abcdefghijklmnopqrstuvwxyz0123456789") {
		t.Errorf("a secret reached the client unredacted: %s", all)
	}

	dyn.set("dyn_b")
	waitChanged()
	if l := list(); !slices.Equal(l, []string{"dyn_b"}) {
		t.Fatalf("tools after removing = %v", l)
	}
	if res := callTool("dyn_a"); !res.IsError || !strings.Contains(resultText(res), `denied by policy: tool "dyn_a" is not registered`) {
		t.Fatalf("call to a removed tool = %q", resultText(res))
	}
	// A tool list that did not change announces nothing.
	dyn.set("dyn_b")
	select {
	case <-changed:
		t.Error("notifications/tools/list_changed without a change")
	case <-time.After(100 * time.Millisecond):
	}
}
