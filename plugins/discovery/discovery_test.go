package discovery

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/plugin/plugintest"
)

func fixtureHost(deny ...string) *plugintest.Host {
	tool := func(name, cat, desc string, aliases, intents []string) plugin.Entry {
		return plugin.Entry{Plugin: cat + "-plugin", PluginVersion: "2.0.0", Tool: plugin.Tool{
			Name: name, Category: cat, Description: desc, Aliases: aliases, Intents: intents,
			InputSchema:  json.RawMessage(`{"type":"object"}`),
			OutputSchema: json.RawMessage(`{"type":"object"}`),
			Annotations:  &plugin.Annotations{ReadOnlyHint: true},
		}}
	}
	h := &plugintest.Host{Entries: []plugin.Entry{
		tool("web_search", "websearch", "Search the web with DuckDuckGo.", []string{"internet", "google"}, []string{"research"}),
		tool("add_bug", "bugtracker", "Record a bug in the project's tracker.", []string{"issue", "ticket"}, []string{"track"}),
		tool("search_bugs_global", "bugtracker", "Search bugs across all projects.", []string{"find issues"}, []string{"track", "research"}),
		tool("list_bugs", "bugtracker", "List a project's bugs.", nil, []string{"track"}),
	}}
	h.Allow = func(name string) (bool, []string) {
		if slices.Contains(deny, name) {
			return false, []string{"denied by tools.denied"}
		}
		return true, nil
	}
	return h
}

func search(t *testing.T, p plugin.Plugin, args map[string]any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(args)
	res, err := p.Tools()[0].Handler(t.Context(), &plugin.Call{Tool: "search_tools", Arguments: raw})
	if err != nil || res.IsError {
		t.Fatalf("search_tools: %v %+v", err, res)
	}
	data, _ := json.Marshal(res.Structured)
	var out map[string]any
	json.Unmarshal(data, &out)
	return out
}

func names(out map[string]any) []string {
	var ns []string
	for _, m := range out["tools"].([]any) {
		ns = append(ns, m.(map[string]any)["name"].(string))
	}
	return ns
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, Name, fixtureHost())
}

func TestSearchRanking(t *testing.T) {
	p := plugintest.Run(t, Name, fixtureHost())
	for name, tc := range map[string]struct {
		args map[string]any
		want []string
	}{
		"exact-name-first":      {map[string]any{"query": "web_search"}, []string{"web_search", "search_bugs_global"}},
		"name-token-over-alias": {map[string]any{"query": "bugs"}, []string{"add_bug", "list_bugs", "search_bugs_global"}},
		"alias":                 {map[string]any{"query": "ticket"}, []string{"add_bug"}},
		"description-only":      {map[string]any{"query": "duckduckgo"}, []string{"web_search"}},
		"no-match":              {map[string]any{"query": "kubernetes"}, nil},
		"category-filter":       {map[string]any{"category": "BugTracker"}, []string{"add_bug", "list_bugs", "search_bugs_global"}},
		"intent-filter":         {map[string]any{"intent": "research"}, []string{"search_bugs_global", "web_search"}},
		"intent-and-query":      {map[string]any{"intent": "research", "query": "search"}, []string{"search_bugs_global", "web_search"}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, names(search(t, p, tc.args))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchHidesDeniedTools(t *testing.T) {
	p := plugintest.Run(t, Name, fixtureHost("web_search"))
	out := search(t, p, map[string]any{"query": "search"})
	if slices.Contains(names(out), "web_search") {
		t.Errorf("denied tool listed: %v", names(out))
	}
	out = search(t, p, map[string]any{"query": "search", "include_unavailable": true})
	var found map[string]any
	for _, m := range out["tools"].([]any) {
		if m.(map[string]any)["name"] == "web_search" {
			found = m.(map[string]any)
		}
	}
	if found == nil || found["available"] != false || found["reasons"] == nil {
		t.Errorf("include_unavailable: %v", found)
	}
}

func TestDetailLevels(t *testing.T) {
	p := plugintest.Run(t, Name, fixtureHost())
	for level, want := range map[string][]string{
		"name":    {"available", "category", "name", "score"},
		"summary": {"available", "category", "description", "name", "plugin", "score"},
		"full":    {"aliases", "annotations", "available", "category", "description", "inputSchema", "intents", "name", "outputSchema", "plugin", "score"},
	} {
		out := search(t, p, map[string]any{"query": "web_search", "detail_level": level})
		first := out["tools"].([]any)[0].(map[string]any)
		var keys []string
		for k := range first {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("%s (-want +got):\n%s", level, diff)
		}
	}
}

func TestListCategories(t *testing.T) {
	p := plugintest.Run(t, Name, fixtureHost("add_bug"))
	res, err := p.Tools()[1].Handler(t.Context(), &plugin.Call{Tool: "list_categories", Arguments: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Category{
		{Category: "bugtracker", Version: "2.0.0", ToolCount: 2, Tools: []string{"list_bugs", "search_bugs_global"}},
		{Category: "websearch", Version: "2.0.0", ToolCount: 1, Tools: []string{"web_search"}},
	}
	if diff := cmp.Diff(want, res.Structured.(map[string]any)["categories"]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTokens(t *testing.T) {
	if diff := cmp.Diff([]string{"search", "bug", "global", "class"}, tokens("Search_BUGS global, class")); diff != "" {
		t.Error(diff)
	}
}

// viewHost is a host whose catalog tells its view (plugin.CatalogView):
// the token is view, and ok is !noView; it counts Permitted calls.
type viewHost struct {
	*plugintest.Host
	view      int
	noView    bool
	permitted int
}

func (h *viewHost) Catalog() plugin.Catalog { return viewCatalog{h, h.Host.Catalog()} }

type viewCatalog struct {
	h *viewHost
	plugin.Catalog
}

func (c viewCatalog) Permitted(ctx context.Context, call *plugin.Call, tool string) (bool, []string) {
	c.h.permitted++
	return c.Catalog.Permitted(ctx, call, tool)
}

func (c viewCatalog) View(context.Context, *plugin.Call) (any, bool) {
	return c.h.view, !c.h.noView
}

func TestAnswersKeptPerView(t *testing.T) {
	h := &viewHost{Host: fixtureHost("add_bug")}
	p := plugintest.Run(t, Name, h)
	categories := func() []Category {
		t.Helper()
		res, err := p.Tools()[1].Handler(t.Context(), &plugin.Call{Tool: "list_categories", Arguments: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(res.Structured)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Categories []Category }
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatal(err)
		}
		return out.Categories
	}
	tools := func(cs []Category) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Tools...)
		}
		slices.Sort(out)
		return out
	}
	asked := func(want bool, what string) {
		t.Helper()
		if got := h.permitted > 0; got != want {
			t.Errorf("%s: policy asked: %v, want %v", what, got, want)
		}
		h.permitted = 0
	}

	first := tools(categories())
	asked(true, "first answer")
	if diff := cmp.Diff([]string{"list_bugs", "search_bugs_global", "web_search"}, tools(categories())); diff != "" {
		t.Errorf("kept answer (-want +got):\n%s", diff)
	}
	asked(false, "same view")
	found := names(search(t, p, map[string]any{"query": "bugs"}))
	asked(true, "search_tools, not kept yet")
	if diff := cmp.Diff(found, names(search(t, p, map[string]any{"query": "bugs"}))); diff != "" {
		t.Errorf("kept search (-want +got):\n%s", diff)
	}
	asked(false, "search_tools, same view and arguments")
	search(t, p, map[string]any{"query": "web"})
	asked(true, "search_tools, other arguments")

	// The policy changes (a new view): the answer follows it.
	h.Allow = func(name string) (bool, []string) { return name == "web_search", nil }
	if diff := cmp.Diff(first, tools(categories())); diff != "" {
		t.Errorf("same view keeps its answer (-want +got):\n%s", diff)
	}
	asked(false, "same view after a change it was not told of")
	h.view++
	if diff := cmp.Diff([]string{"web_search"}, tools(categories())); diff != "" {
		t.Errorf("new view (-want +got):\n%s", diff)
	}
	asked(true, "new view")

	// The tools change too.
	h.Entries = h.Entries[:1]
	h.view++
	if got := tools(categories()); len(got) != 1 || got[0] != "web_search" {
		t.Errorf("after the tools changed: %v", got)
	}
	asked(true, "new tools")

	// A catalog that cannot tell its view is asked every time.
	h.noView = true
	categories()
	asked(true, "no view")
	categories()
	asked(true, "no view, again")
}
