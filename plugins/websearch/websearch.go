// Package websearch serves web_search: DuckDuckGo Lite results, fetched
// through the host's network guard and parsed with goquery.
//
// # Endpoint
//
// The plugin GETs https://lite.duckduckgo.com/lite/ with the query in q
// and the region in kl. MCP_SECURE_WEBSEARCH_URL overrides the endpoint
// (tests, private mirrors); the override is still subject to the network
// policy, like every connection the plugin makes.
//
// # Results
//
// Each result is a title, the target URL (unwrapped from DuckDuckGo's
// /l/?uddg= redirect) and a snippet. Sponsored rows are skipped. A page that
// has neither results nor DuckDuckGo's no-results marker is reported as
// unparseable rather than as an empty answer.
package websearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Name and Version of the plugin.
const (
	Name    = "websearch"
	Version = "1.0.0"
)

// DefaultEndpoint is DuckDuckGo Lite.
const DefaultEndpoint = "https://lite.duckduckgo.com/lite/"

// EndpointEnv overrides DefaultEndpoint.
const EndpointEnv = "MCP_SECURE_WEBSEARCH_URL"

// Limits.
const (
	maxBody        = 2 << 20 // bytes of a results page read at most
	requestTimeout = 20 * time.Second
	defaultResults = 5
)

func init() {
	plugin.Register(Name, func(h plugin.Host) (plugin.Plugin, error) {
		endpoint := DefaultEndpoint
		if v := os.Getenv(EndpointEnv); v != "" {
			endpoint = v
		}
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%s: %q is not an http(s) URL", EndpointEnv, endpoint)
		}
		return &search{endpoint: u, client: h.Network().HTTPClient(requestTimeout)}, nil
	})
}

type search struct {
	endpoint *url.URL
	client   *http.Client
}

var _ plugin.Plugin = (*search)(nil)

func (s *search) Info() plugin.Info {
	return plugin.Info{Name: Name, Version: Version, Description: "Web search through DuckDuckGo Lite"}
}

const inputSchema = `{
  "type": "object",
  "properties": {
    "query": {"type": "string", "minLength": 1, "maxLength": 500, "description": "What to search the web for"},
    "max_results": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5, "description": "How many results to return"},
    "region": {"type": "string", "pattern": "^[a-z]{2}-[a-z]{2}$", "description": "DuckDuckGo region, e.g. us-en, de-de; default: no region (wt-wt)"}
  },
  "required": ["query"],
  "additionalProperties": false
}`

const outputSchema = `{
  "type": "object",
  "properties": {
    "query": {"type": "string"},
    "count": {"type": "integer"},
    "results": {"type": "array", "items": {
      "type": "object",
      "properties": {"title": {"type": "string"}, "url": {"type": "string"}, "snippet": {"type": "string"}},
      "required": ["title", "url", "snippet"]
    }}
  },
  "required": ["query", "count", "results"]
}`

// openWorld: the tool reaches the internet (as far as the policy lets it).
var openWorld = true

func (s *search) Tools() []plugin.Tool {
	return []plugin.Tool{{
		Name:         "web_search",
		Title:        "Web search",
		Description:  "Search the web with DuckDuckGo and return titles, URLs and snippets. Network access is limited by the security policy.",
		Category:     "websearch",
		Aliases:      []string{"internet", "google", "lookup", "duckduckgo", "browse"},
		Intents:      []string{"research"},
		InputSchema:  json.RawMessage(inputSchema),
		OutputSchema: json.RawMessage(outputSchema),
		Annotations:  &plugin.Annotations{ReadOnlyHint: true, OpenWorldHint: &openWorld},
		Handler:      s.handle,
	}}
}

type args struct {
	Query      string `json:"query"`
	MaxResults int    `json:"max_results"`
	Region     string `json:"region"`
}

// Result is one search hit.
type Result struct {
	Title   string `json:"title"`
	URL     string `json:"url"`
	Snippet string `json:"snippet"`
}

func (s *search) handle(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	var a args
	if err := json.Unmarshal(call.Arguments, &a); err != nil {
		return nil, fmt.Errorf("decode arguments: %w", err)
	}
	a.Query = strings.TrimSpace(a.Query)
	if a.Query == "" {
		return plugin.Errorf("query is blank"), nil
	}
	if a.MaxResults == 0 {
		a.MaxResults = defaultResults
	}
	u := *s.endpoint
	q := u.Query()
	q.Set("q", a.Query)
	q.Set("kl", cmpOr(a.Region, "wt-wt"))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "mcp-secure-websearch/"+Version)
	req.Header.Set("Accept", "text/html")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return plugin.Errorf("web search timed out waiting for %s", u.Host), nil
		}
		// A connection failure the model can act on is said in the result;
		// a policy denial (and anything else) is wrapped for the server to
		// report.
		if why := plugin.Unreachable(err); why != "" {
			return plugin.Errorf("web search could not reach %s: %s", u.Host, why), nil
		}
		return nil, fmt.Errorf("web search request to %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return plugin.Errorf("web search failed: %s answered HTTP %d", u.Host, resp.StatusCode), nil
	}
	results, err := Parse(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return plugin.Errorf("web search timed out reading the results from %s", u.Host), nil
		}
		return plugin.Errorf("web search failed: %v", err), nil
	}
	if len(results) > a.MaxResults {
		results = results[:a.MaxResults]
	}
	return &plugin.Result{
		Text:       format(a.Query, results),
		Structured: map[string]any{"query": a.Query, "count": len(results), "results": results},
	}, nil
}

func format(query string, results []Result) string {
	if len(results) == 0 {
		return fmt.Sprintf("No results for %q.", query)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d result(s) for %q:\n", len(results), query)
	for i, r := range results {
		fmt.Fprintf(&b, "\n%d. %s\n   %s\n", i+1, r.Title, r.URL)
		if r.Snippet != "" {
			fmt.Fprintf(&b, "   %s\n", r.Snippet)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// ErrUnparseable means a page is not a DuckDuckGo Lite results page.
var ErrUnparseable = errors.New("the results page could not be parsed")

// Parse reads a DuckDuckGo Lite results page.
func Parse(r io.Reader) ([]Result, error) {
	doc, err := goquery.NewDocumentFromReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnparseable, err)
	}
	results := []Result{}
	doc.Find("a.result-link").Each(func(_ int, a *goquery.Selection) {
		row := a.Closest("tr")
		if row.HasClass("result-sponsored") || a.Closest(".result-sponsored").Length() > 0 {
			return
		}
		href, _ := a.Attr("href")
		target := unwrap(href)
		if target == "" {
			return
		}
		snippet := ""
		for next := row.Next(); next.Length() > 0; next = next.Next() {
			if next.Find("a.result-link").Length() > 0 {
				break
			}
			if td := next.Find("td.result-snippet"); td.Length() > 0 {
				snippet = clean(td.First().Text())
				break
			}
		}
		results = append(results, Result{Title: clean(a.Text()), URL: target, Snippet: snippet})
	})
	if len(results) == 0 && !noResults(doc) {
		return nil, ErrUnparseable
	}
	return results, nil
}

// noResults recognises DuckDuckGo's page for a query without hits: the
// search form is there, and a "No results" notice or an empty table.
func noResults(doc *goquery.Document) bool {
	if doc.Find("form input[name=q]").Length() == 0 {
		return false
	}
	text := strings.ToLower(doc.Text())
	return strings.Contains(text, "no results") || strings.Contains(text, "no more results")
}

// unwrap returns the destination of a result link: DuckDuckGo wraps it as
// //duckduckgo.com/l/?uddg=<escaped URL>&rut=...; only http(s) targets are
// returned.
func unwrap(href string) string {
	href = strings.TrimSpace(href)
	if strings.HasPrefix(href, "//") {
		href = "https:" + href
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	if strings.HasSuffix(u.Path, "/l/") || u.Path == "/l" {
		if dest := u.Query().Get("uddg"); dest != "" {
			if u, err = url.Parse(dest); err != nil {
				return ""
			}
		}
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return ""
	}
	return u.String()
}

func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
