// Package discovery serves the tools that find the other tools:
// search_tools and list_categories.
//
// # Ranking
//
// A query is split into tokens (lower case, split on anything that is not a
// letter or digit, a plural s dropped). Each tool scores per token: its
// whole name equal to the query beats a name token, which beats an alias,
// which beats a category or intent, which beats a word of the description.
// Tools with no matching token are left out.
//
// # Visibility
//
// Results only list tools the policy lets the caller use, asked of the
// tools decision point through the host's catalog; include_unavailable adds
// the others, flagged with the policy's reasons.
package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Name and Version of the plugin.
const (
	Name    = "discovery"
	Version = "1.0.0"
)

func init() {
	plugin.Register(Name, func(h plugin.Host) (plugin.Plugin, error) {
		if h == nil || h.Catalog() == nil {
			return nil, fmt.Errorf("discovery needs the host's catalog")
		}
		return &discovery{catalog: h.Catalog()}, nil
	})
}

type discovery struct {
	catalog plugin.Catalog
	memo    memo
}

// memo keeps answers under the catalog's view (plugin.CatalogView): a
// client asks list_categories and search_tools again and again while
// neither the tools nor the policy change, and each answer asks the
// policy about every tool.
type memo struct {
	mu sync.Mutex
	m  map[memoKey]*plugin.Result
	// last is the answer given last: a client mostly asks one question
	// again, and comparing a key costs less than hashing it.
	last atomic.Pointer[memoEntry]
}

type memoEntry struct {
	key memoKey
	r   *plugin.Result
}

type memoKey struct {
	view any
	tool string
	args searchArgs
}

// memoLimit bounds the memo; past it, it starts afresh.
const memoLimit = 256

// cached answers a call from the memo, or computes the answer and keeps
// it when the catalog's view stayed the same meanwhile.
func (d *discovery) cached(ctx context.Context, call *plugin.Call, args searchArgs, compute func() *plugin.Result) *plugin.Result {
	cv, ok := d.catalog.(plugin.CatalogView)
	if !ok {
		return compute()
	}
	view, ok := cv.View(ctx, call)
	if !ok {
		return compute()
	}
	key := memoKey{view: view, tool: call.Tool, args: args}
	if l := d.memo.last.Load(); l != nil && l.key == key {
		out := *l.r
		return &out
	}
	d.memo.mu.Lock()
	r, hit := d.memo.m[key]
	d.memo.mu.Unlock()
	if !hit {
		r = compute()
		if after, ok := cv.View(ctx, call); !ok || after != view {
			return r
		}
		// Kept encoded: a kept answer is given many times, and encoded
		// each time otherwise.
		if data, err := json.Marshal(r.Structured); err == nil {
			kept := *r
			kept.Structured = json.RawMessage(data)
			r = &kept
		}
		d.memo.mu.Lock()
		if d.memo.m == nil || len(d.memo.m) >= memoLimit {
			d.memo.m = map[memoKey]*plugin.Result{}
		}
		d.memo.m[key] = r
		d.memo.mu.Unlock()
	}
	d.memo.last.Store(&memoEntry{key: key, r: r})
	out := *r // the kept answer is shared: never handed out itself
	return &out
}

var _ plugin.Plugin = (*discovery)(nil)

func (d *discovery) Info() plugin.Info {
	return plugin.Info{Name: Name, Version: Version, Description: "Find the tools this server offers"}
}

const searchSchema = `{
  "type": "object",
  "properties": {
    "query": {"type": "string", "maxLength": 200, "description": "Words to look for in tool names, aliases and descriptions"},
    "category": {"type": "string", "maxLength": 64, "description": "Only tools of this category (see list_categories)"},
    "intent": {"type": "string", "maxLength": 64, "description": "What you want to do, e.g. research, track, discover"},
    "detail_level": {"type": "string", "enum": ["name", "summary", "full"], "default": "summary", "description": "name: names only; summary: with descriptions; full: MCP tool objects (inputSchema, outputSchema, annotations) plus aliases and intents"},
    "include_unavailable": {"type": "boolean", "default": false, "description": "Also list tools the policy does not let you use, with the reason"}
  },
  "additionalProperties": false
}`

const categoriesSchema = `{"type": "object", "properties": {}, "additionalProperties": false}`

// readOnly are the hints of both discovery tools: they read the catalog.
var readOnly = &plugin.Annotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(bool)}

func (d *discovery) Tools() []plugin.Tool {
	return []plugin.Tool{
		{
			Name:        "search_tools",
			Title:       "Search tools",
			Description: "Find the tools available to you by keyword, category or intent, ranked by relevance. Start here.",
			Category:    "discovery",
			Aliases:     []string{"find tools", "lookup", "discover", "help", "capabilities"},
			Intents:     []string{"discover"},
			InputSchema: json.RawMessage(searchSchema),
			Annotations: readOnly,
			Handler:     d.search,
			Local:       true,
		},
		{
			Name:        "list_categories",
			Title:       "List tool categories",
			Description: "List the tool categories with their version, tool count and tool names.",
			Category:    "discovery",
			Aliases:     []string{"categories", "overview", "catalog"},
			Intents:     []string{"discover"},
			InputSchema: json.RawMessage(categoriesSchema),
			Annotations: readOnly,
			Handler:     d.categories,
			Local:       true,
		},
	}
}

type searchArgs struct {
	Query              string `json:"query"`
	Category           string `json:"category"`
	Intent             string `json:"intent"`
	DetailLevel        string `json:"detail_level"`
	IncludeUnavailable bool   `json:"include_unavailable"`
}

// Match is one search result.
type Match struct {
	Name        string   `json:"name"`
	Category    string   `json:"category"`
	Plugin      string   `json:"plugin,omitempty"`
	Score       int      `json:"score,omitempty"`
	Available   bool     `json:"available"`
	Reasons     []string `json:"reasons,omitempty"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
	Intents     []string `json:"intents,omitempty"`
	// At detail_level full, a match is also an MCP tool object: what
	// tools/list would give, so the model can call it at once.
	InputSchema  json.RawMessage     `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage     `json:"outputSchema,omitempty"`
	Annotations  *plugin.Annotations `json:"annotations,omitempty"`
}

func (d *discovery) search(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	var a searchArgs
	if err := json.Unmarshal(call.Arguments, &a); err != nil {
		return nil, fmt.Errorf("decode arguments: %w", err)
	}
	if a.DetailLevel == "" {
		a.DetailLevel = "summary"
	}
	return d.cached(ctx, call, a, func() *plugin.Result { return d.searchFor(ctx, call, a) }), nil
}

func (d *discovery) searchFor(ctx context.Context, call *plugin.Call, a searchArgs) *plugin.Result {
	query := tokens(a.Query)
	var out []Match
	for _, e := range d.catalog.Entries() {
		t := e.Tool
		if a.Category != "" && !strings.EqualFold(t.Category, a.Category) {
			continue
		}
		if a.Intent != "" && !servesIntent(t, a.Intent) {
			continue
		}
		score := 0
		if len(query) > 0 {
			if score = Score(t, a.Query); score == 0 {
				continue
			}
		}
		ok, reasons := d.catalog.Permitted(ctx, call, t.Name)
		if !ok && !a.IncludeUnavailable {
			continue
		}
		m := Match{Name: t.Name, Category: t.Category, Score: score, Available: ok}
		if !ok {
			m.Reasons = reasons
		}
		if a.DetailLevel != "name" {
			m.Title, m.Description, m.Plugin = t.Title, t.Description, e.Plugin
		}
		if a.DetailLevel == "full" {
			m.Aliases, m.Intents, m.InputSchema = t.Aliases, t.Intents, t.InputSchema
			m.OutputSchema, m.Annotations = t.OutputSchema, t.Annotations
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Name < out[j].Name
	})
	if out == nil {
		out = []Match{}
	}
	var b strings.Builder
	if len(out) == 0 {
		b.WriteString("No tools match. Try list_categories, or a broader query.")
	} else {
		fmt.Fprintf(&b, "%d tool(s):\n", len(out))
		for _, m := range out {
			fmt.Fprintf(&b, "- %s [%s]", m.Name, m.Category)
			if m.Description != "" {
				fmt.Fprintf(&b, ": %s", m.Description)
			}
			if !m.Available {
				fmt.Fprintf(&b, " (unavailable: %s)", strings.Join(m.Reasons, "; "))
			}
			b.WriteByte('\n')
		}
	}
	return &plugin.Result{
		Text: strings.TrimRight(b.String(), "\n"),
		Structured: map[string]any{
			"query":        a.Query,
			"detail_level": a.DetailLevel,
			"count":        len(out),
			"tools":        out,
		},
	}
}

// Category is one entry of list_categories.
type Category struct {
	Category  string   `json:"category"`
	Version   string   `json:"version"`
	ToolCount int      `json:"tool_count"`
	Tools     []string `json:"tools"`
}

func (d *discovery) categories(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	return d.cached(ctx, call, searchArgs{}, func() *plugin.Result { return d.categoriesFor(ctx, call) }), nil
}

func (d *discovery) categoriesFor(ctx context.Context, call *plugin.Call) *plugin.Result {
	byName := map[string]*Category{}
	for _, e := range d.catalog.Entries() {
		if ok, _ := d.catalog.Permitted(ctx, call, e.Tool.Name); !ok {
			continue
		}
		name := e.Tool.Category
		if name == "" {
			name = "uncategorized"
		}
		c, ok := byName[name]
		if !ok {
			c = &Category{Category: name, Version: e.PluginVersion}
			byName[name] = c
		}
		c.Tools = append(c.Tools, e.Tool.Name)
		c.ToolCount++
	}
	out := make([]Category, 0, len(byName))
	for _, c := range byName {
		slices.Sort(c.Tools)
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Category) int { return strings.Compare(a.Category, b.Category) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d categor%s:\n", len(out), map[bool]string{true: "y", false: "ies"}[len(out) == 1])
	for _, c := range out {
		fmt.Fprintf(&b, "- %s (v%s, %d tools): %s\n", c.Category, c.Version, c.ToolCount, strings.Join(c.Tools, ", "))
	}
	return &plugin.Result{
		Text:       strings.TrimRight(b.String(), "\n"),
		Structured: map[string]any{"categories": out, "count": len(out)},
	}
}

func servesIntent(t plugin.Tool, intent string) bool {
	if strings.EqualFold(t.Category, intent) {
		return true
	}
	return slices.ContainsFunc(t.Intents, func(i string) bool { return strings.EqualFold(i, intent) })
}

// Weights of a token match, by where it matched.
const (
	weightExactName   = 100
	weightNameToken   = 10
	weightAlias       = 6
	weightCategory    = 4
	weightDescription = 1
)

// Score ranks tool t for query: 0 means no query token matched.
func Score(t plugin.Tool, query string) int {
	q := tokens(query)
	if len(q) == 0 {
		return 0
	}
	score := 0
	if strings.EqualFold(strings.TrimSpace(query), t.Name) {
		score += weightExactName
	}
	name := set(tokens(t.Name))
	var aliases []string
	for _, a := range t.Aliases {
		aliases = append(aliases, tokens(a)...)
	}
	alias := set(aliases)
	cat := set(append(tokens(t.Category), tokens(strings.Join(t.Intents, " "))...))
	desc := set(tokens(t.Description + " " + t.Title))
	for _, tok := range q {
		switch {
		case name[tok]:
			score += weightNameToken
		case alias[tok]:
			score += weightAlias
		case cat[tok]:
			score += weightCategory
		case desc[tok]:
			score += weightDescription
		}
	}
	return score
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// tokens splits s into lower-case words, dropping a plural s.
func tokens(s string) []string {
	fields := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	out := fields[:0]
	for _, f := range fields {
		if len(f) > 3 && strings.HasSuffix(f, "s") && !strings.HasSuffix(f, "ss") {
			f = f[:len(f)-1]
		}
		out = append(out, f)
	}
	return out
}
