package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// listPlugin serves a tool whose definition has what encoders treat
// differently: HTML characters, an output schema, annotations.
type listPlugin struct{}

func (listPlugin) Info() plugin.Info { return plugin.Info{Name: "list-test", Version: "0.0.1"} }

func (listPlugin) Tools() []plugin.Tool {
	yes := true
	return []plugin.Tool{{Name: "html_tool", Title: "A <b> & c", Description: "reads <a> & writes \"b\" é\u2028",
		InputSchema:  json.RawMessage(`{ "type": "object", "properties": {"q": {"type": "string", "pattern": "^<&>$"}} }`),
		OutputSchema: json.RawMessage(`{"type":"object"}`),
		Annotations:  &plugin.Annotations{Title: "t<", ReadOnlyHint: true, OpenWorldHint: &yes},
		Handler:      func(context.Context, *plugin.Call) (*plugin.Result, error) { return &plugin.Result{Text: "ok"}, nil }}}
}

// normalJSON is b decoded and encoded again, to compare answers as JSON.
func normalJSON(t *testing.T, b string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(b), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// TestFastLaneToolsListAnswersAsTheSDK: for each protocol version a
// session can begin with initialize (2026-07-28 has none: its requests
// name their version and go to the SDK), the
// fast lane's tools/list answer is byte for byte the SDK path's (asked
// with an empty cursor, which the fast lane leaves to it) as the tools
// change at run time and the policy is reloaded, and what it lists is
// remembered for PolicyChanged as on the SDK path.
func TestFastLaneToolsListAnswersAsTheSDK(t *testing.T) {
	var mu sync.Mutex
	took := map[string]bool{}
	tookHook = func(r *jsonrpc.Request) { mu.Lock(); took[fmt.Sprint(r.ID.Raw())] = true; mu.Unlock() }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	for _, version := range []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			eng := toolsEngine(t)
			dyn := &dynPlugin{names: []string{"dyn_a"}}
			c, s := newRawClientWith(t, Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}},
				Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{dyn, listPlugin{}}})
			c.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + version + `","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
			if got := c.answer(0); !strings.Contains(got, `"protocolVersion":"`+version+`"`) {
				t.Fatalf("initialize answered %s", got)
			}
			c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			id := 1
			// list asks twice, in the fast lane's shape and in the SDK's,
			// and returns the tools listed.
			list := func(step string) []string {
				t.Helper()
				var got [2]string
				for i, params := range []string{`,"params":{"_meta":{"progressToken":"p"}}`, `,"params":{"cursor":""}`} {
					if i == 0 && id%2 == 1 {
						params = "" // the fast lane takes both plain shapes
					}
					c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"%s}`, id, params))
					got[i] = c.answer(id)
					mu.Lock()
					fast := took[fmt.Sprint(id)]
					mu.Unlock()
					if fast != (i == 0) {
						t.Errorf("%s: request %d taken by the fast lane %v, want %v", step, id, fast, i == 0)
					}
					id++
				}
				if got[0] != got[1] {
					t.Errorf("%s: fast lane answered\n%s\nthe SDK\n%s\ndiff (-fast +sdk):\n%s", step, got[0], got[1],
						cmp.Diff(normalJSON(t, got[0]), normalJSON(t, got[1])))
				}
				var res struct {
					Tools []struct{ Name string }
					TTL   *int `json:"ttlMs"`
				}
				if err := json.Unmarshal([]byte(got[0]), &res); err != nil {
					t.Fatalf("%s: %v: %s", step, err, got[0])
				}
				if old := version < statelessProtocol; old != (res.TTL == nil) {
					t.Errorf("%s: cache hints %s for protocol %s", step, got[0], version)
				}
				var names []string
				for _, tl := range res.Tools {
					names = append(names, tl.Name)
				}
				return names
			}
			check := func(step string, want ...string) {
				t.Helper()
				for range 2 { // the second from the kept answer
					if got := list(step); !slices.Equal(got, want) {
						t.Errorf("%s: listed %v, want %v", step, got, want)
					}
				}
			}
			check("start", "dyn_a", "html_tool")
			if !bytes.Contains([]byte(c.lastList(t, &id)), []byte(`A <b> & c`)) {
				t.Error("the answer escapes HTML characters; the SDK does not")
			}
			// Until the client has read it, a notification fills the
			// output, whose room the fast lane then cannot know.
			dyn.set("dyn_a", "dyn_b")
			c.notification("notifications/tools/list_changed")
			check("added", "dyn_a", "dyn_b", "html_tool")
			dyn.set("dyn_b")
			c.notification("notifications/tools/list_changed")
			check("removed", "dyn_b", "html_tool")

			eng.Adopt(toolsEngine(t, "dyn_b"))
			if !s.PolicyChanged(t.Context()) {
				t.Error("PolicyChanged saw no change")
			}
			c.notification("notifications/tools/list_changed")
			check("reloaded", "html_tool")
			c.lastList(t, &id)
			if s.PolicyChanged(t.Context()) {
				t.Error("PolicyChanged saw a change where there is none")
			}
		})
	}
}

// TestFastLaneToolsListRemembersTheList: a session that listed the tools
// only through the fast lane is told when a reload changes its list, and
// not when it does not.
func TestFastLaneToolsListRemembersTheList(t *testing.T) {
	var mu sync.Mutex
	took := 0
	tookHook = func(*jsonrpc.Request) { mu.Lock(); took++; mu.Unlock() }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	eng := toolsEngine(t)
	c, s := newRawClientWith(t, Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}},
		Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{&dynPlugin{names: []string{"dyn_a", "dyn_b"}}}})
	c.initialize()
	id := 1
	if got := c.lastList(t, &id); !strings.Contains(got, `"dyn_b"`) {
		t.Fatalf("listed %s", got)
	}
	eng.Adopt(toolsEngine(t, "dyn_c")) // no tool of the list
	if s.PolicyChanged(t.Context()) {
		t.Error("PolicyChanged saw a change where there is none")
	}
	eng.Adopt(toolsEngine(t, "dyn_b"))
	if !s.PolicyChanged(t.Context()) {
		t.Error("PolicyChanged saw no change for a session that listed through the fast lane")
	}
	mu.Lock()
	defer mu.Unlock()
	if took != 1 {
		t.Errorf("the fast lane took %d requests, want 1", took)
	}
}

// lastList asks tools/list in the fast lane's shape and returns the
// answer.
func (c *rawClient) lastList(t *testing.T, id *int) string {
	t.Helper()
	c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, *id))
	*id++
	return c.answer(*id - 1)
}

func TestListParams(t *testing.T) {
	cases := map[string]bool{
		``:                              true,
		`{}`:                            true,
		` { } `:                         true,
		`{"_meta":{}}`:                  true,
		`{"_meta":{"progressToken":7}}`: true,
		`{"cursor":""}`:                 false,
		`{"cursor":"abc"}`:              false,
		`{"_meta":{},"cursor":"x"}`:     false,
		`{"_meta":{},"_meta":{}}`:       false,
		`{"_meta":[]}`:                  false,
		`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`: false,
		`{"\u005fmeta":{}}`: false,
		`[]`:                false,
		`{"other":1}`:       false,
	}
	for in, want := range cases {
		if got := listParams([]byte(in)); got != want {
			t.Errorf("listParams(%s) = %v, want %v", in, got, want)
		}
	}
}

// pinnedPlugin's tool has a pinned definition: its state is an input of
// every decision, so no answer can be kept.
type pinnedPlugin struct{}

func (pinnedPlugin) Info() plugin.Info { return plugin.Info{Name: "pinned-test", Version: "0.0.1"} }

func (pinnedPlugin) Tools() []plugin.Tool {
	return []plugin.Tool{{Name: "pinned_tool", InputSchema: json.RawMessage(`{"type":"object"}`),
		Definition: func() plugin.DefinitionState { return plugin.DefinitionState{} },
		Handler:    func(context.Context, *plugin.Call) (*plugin.Result, error) { return &plugin.Result{Text: "ok"}, nil }}}
}

// TestFastLaneToolsListLeavesPinnedToTheSDK: with a pinned tool in the
// table, tools/list goes to the SDK.
func TestFastLaneToolsListLeavesPinnedToTheSDK(t *testing.T) {
	var mu sync.Mutex
	took := 0
	tookHook = func(*jsonrpc.Request) { mu.Lock(); took++; mu.Unlock() }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	c, _ := newRawClientWith(t, Options{Engine: toolsEngine(t), Limiter: &fakeLimiter{limit: map[string]int{}},
		Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{pinnedPlugin{}}})
	c.initialize()
	id := 1
	for range 2 {
		if got := c.lastList(t, &id); !strings.Contains(got, `"pinned_tool"`) {
			t.Fatalf("listed %s", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if took != 0 {
		t.Errorf("the fast lane took %d requests, want 0", took)
	}
}
