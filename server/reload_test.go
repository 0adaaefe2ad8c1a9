package server

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

func init() {
	plugin.Register("reload-test", func(h plugin.Host) (plugin.Plugin, error) { return reloadPlugin{h}, nil })
}

// reloadPlugin's "asks" waits for its gate, then asks the catalog
// whether the caller may use "other": a decision taken on behalf of the
// call, like a guard's.
type reloadPlugin struct{ h plugin.Host }

func (reloadPlugin) Info() plugin.Info { return plugin.Info{Name: "reload-test", Version: "0.0.1"} }

func (p reloadPlugin) Tools() []plugin.Tool {
	obj := json.RawMessage(`{"type":"object"}`)
	return []plugin.Tool{
		{Name: "asks", InputSchema: obj, Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
			var a struct{ Gate string }
			json.Unmarshal(c.Arguments, &a)
			if a.Gate != "" {
				<-gate(a.Gate)
			}
			if ok, _ := p.h.Catalog().Permitted(ctx, c, "other"); ok {
				return &plugin.Result{Text: "other permitted"}, nil
			}
			return &plugin.Result{Text: "other denied"}, nil
		}},
		{Name: "other", InputSchema: obj, Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) {
			return &plugin.Result{Text: "ok"}, nil
		}},
	}
}

func toolsEngine(t *testing.T, denied ...any) *engine.Engine {
	t.Helper()
	return revisionEngine(t, nil, denied...)
}

// revisionEngine is toolsEngine with a policy revision.
func revisionEngine(t *testing.T, rev *string, denied ...any) *engine.Engine {
	t.Helper()
	cfg, err := engine.Builtin(map[string]any{"tools": map[string]any{"allow_all": true, "denied": append([]any{}, denied...)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Revision = rev
	e, err := engine.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A call in flight during a reload finishes under the snapshot it
// started with; a call after it decides under the new one; a session
// that listed the tools is told the list changed, and the new list
// follows the new policy. Every record of a call names the revision it
// was decided under.
func TestReloadPinsCallsAndAnnouncesTheList(t *testing.T) {
	eng := revisionEngine(t, new("r1"))
	aud := &fakeAuditor{}
	s, err := New(Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: aud,
		Timeout: 10 * time.Second, Plugins: []string{"reload-test"}})
	if err != nil {
		t.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	changed := make(chan struct{}, 4)
	client := mcp.NewClient(&mcp.Implementation{Name: "unit", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	cs, err := client.Connect(t.Context(), &mcp.IOTransport{Reader: cIn, Writer: cOut}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); cancel(); cOut.Close(); <-done })
	if caps := cs.InitializeResult().Capabilities; caps.Tools == nil || !caps.Tools.ListChanged {
		t.Fatalf("capabilities = %+v, want tools.listChanged", caps)
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
		return names
	}
	if got := list(); len(got) != 2 {
		t.Fatalf("tools before = %v", got)
	}
	if s.PolicyChanged(t.Context()) {
		t.Fatal("a notification without a change")
	}

	g, release := newGate(t)
	inFlight := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, _ := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "asks", Arguments: map[string]any{"gate": g}})
		inFlight <- res
	}()
	// Wait until the call has pinned its snapshot (it is at the gate).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, waiting := gates.Load(g); waiting {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	eng.Adopt(revisionEngine(t, new("r2"), "other"))
	if !s.PolicyChanged(t.Context()) {
		t.Fatal("PolicyChanged saw no change")
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed")
	}
	if got := list(); len(got) != 1 || got[0] != "asks" {
		t.Fatalf("tools after = %v", got)
	}
	release()
	select {
	case res := <-inFlight:
		if res == nil || resultText(res) != "other permitted" {
			t.Fatalf("in-flight call = %v, want the old snapshot's answer", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight call did not finish")
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "asks", Arguments: map[string]any{}})
	if err != nil || resultText(res) != "other denied" {
		t.Fatalf("call after the reload = %v, %v", res, err)
	}
	var kinds []string
	for _, r := range aud.all() {
		want := "r2"
		if r.RequestID == aud.all()[0].RequestID {
			want = "r1" // the call in flight across the reload
		}
		if r.Revision == nil || *r.Revision != want {
			t.Errorf("%s record of request %s: revision %v, want %q", r.Kind, r.RequestID, r.Revision, want)
			continue
		}
		kinds = append(kinds, r.Kind+"@"+*r.Revision)
	}
	if len(kinds) != 4 {
		t.Errorf("records %v, want a decision and a result for each call", kinds)
	}
}
