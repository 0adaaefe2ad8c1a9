package websearch

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/plugin/plugintest"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	got, err := Parse(strings.NewReader(string(fixture(t, "results.html"))))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Title: "Tutorial: Getting started with generics", URL: "https://go.dev/doc/tutorial/generics", Snippet: "This tutorial introduces the basics of generics in Go."},
		{Title: "Generics in Go, explained & compared", URL: "https://example.org/posts?id=7&lang=en", Snippet: `Type parameters, constraints and "any".`},
		{Title: "A plain link without snippet", URL: "https://plain.example.net/page", Snippet: ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got, err := Parse(strings.NewReader(string(fixture(t, "noresults.html")))); err != nil || len(got) != 0 {
		t.Errorf("no-results page: %v %v", got, err)
	}
	for _, page := range []string{string(fixture(t, "captcha.html")), "", "not html at all", `{"json": true}`} {
		if _, err := Parse(strings.NewReader(page)); !errors.Is(err, ErrUnparseable) {
			t.Errorf("Parse(%.20q) err = %v, want ErrUnparseable", page, err)
		}
	}
}

func TestUnwrap(t *testing.T) {
	for in, want := range map[string]string{
		"//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx&rut=1": "https://a.example/x",
		"https://duckduckgo.com/l/?uddg=http%3A%2F%2Fb.example":      "http://b.example",
		"https://c.example/direct":                                   "https://c.example/direct",
		"//duckduckgo.com/l/?uddg=file%3A%2F%2F%2Fetc%2Fpasswd":      "",
		"javascript:alert(1)":                                        "",
		"/relative/path":                                             "",
		"%zz":                                                        "",
	} {
		if got := unwrap(in); got != want {
			t.Errorf("unwrap(%q) = %q, want %q", in, got, want)
		}
	}
}

// newSearch builds the plugin against a loopback fixture server.
func newSearch(t *testing.T, h http.Handler) (plugin.Tool, *[]string) {
	t.Helper()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RawQuery)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(EndpointEnv, srv.URL+"/lite/")
	p := plugintest.Run(t, Name, &plugintest.Host{Net: plugintest.Loopback{}})
	return p.Tools()[0], &seen
}

func call(t *testing.T, tool plugin.Tool, args map[string]any) (*plugin.Result, error) {
	t.Helper()
	raw, _ := json.Marshal(args)
	return tool.Handler(t.Context(), &plugin.Call{Tool: "web_search", Arguments: raw})
}

func TestSearchAgainstFixtureServer(t *testing.T) {
	page := fixture(t, "results.html")
	tool, seen := newSearch(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(page) }))
	res, err := call(t, tool, map[string]any{"query": " golang generics ", "max_results": 2, "region": "de-de"})
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	st := res.Structured.(map[string]any)
	if st["count"] != 2 || len(st["results"].([]Result)) != 2 {
		t.Errorf("structured = %+v", st)
	}
	if !strings.Contains(res.Text, "https://go.dev/doc/tutorial/generics") {
		t.Errorf("text = %q", res.Text)
	}
	if q := (*seen)[len(*seen)-1]; !strings.Contains(q, "q=golang+generics") || !strings.Contains(q, "kl=de-de") {
		t.Errorf("query string = %q", q)
	}
}

func TestSearchErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		handler http.HandlerFunc
		want    string
	}{
		"non-2xx":     {func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }, "HTTP 503"},
		"unparseable": {func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html><body>captcha</body></html>")) }, "could not be parsed"},
		"no-results": {func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`<html><form><input name="q"></form><p>No results.</p></html>`))
		}, "No results"},
	} {
		t.Run(name, func(t *testing.T) {
			tool, _ := newSearch(t, tc.handler)
			res, err := call(t, tool, map[string]any{"query": "x"})
			if err != nil || !strings.Contains(res.Text, tc.want) {
				t.Fatalf("%v %+v", err, res)
			}
			if res.IsError == (name == "no-results") {
				t.Errorf("isError = %v", res.IsError)
			}
		})
	}
}

func TestSearchTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tool, _ := newSearch(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	res, err := tool.Handler(ctx, &plugin.Call{Tool: "web_search", Arguments: json.RawMessage(`{"query":"slow"}`)})
	if err != nil || !res.IsError || !strings.Contains(res.Text, "timed out") {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestSearchOnlyThroughHostNetwork(t *testing.T) {
	// The endpoint is not loopback: the test network refuses it, and the
	// refusal comes back as an error wrapping the host's denial.
	t.Setenv(EndpointEnv, "https://lite.duckduckgo.com/lite/")
	p := plugintest.Run(t, Name, &plugintest.Host{Net: plugintest.Loopback{}})
	_, err := call(t, p.Tools()[0], map[string]any{"query": "x"})
	if !errors.Is(err, plugintest.ErrNotLoopback) {
		t.Fatalf("err = %v, want the host network's refusal", err)
	}
}

func TestBadEndpointOverride(t *testing.T) {
	t.Setenv(EndpointEnv, "ftp://example.com/")
	f, _ := plugin.Lookup(Name)
	if _, err := f(&plugintest.Host{}); err == nil {
		t.Fatal("an ftp endpoint was accepted")
	}
}

// An unreachable endpoint is a result that says why, not a bare failure.
func TestSearchUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	t.Setenv(EndpointEnv, "http://"+addr+"/lite/")
	tool := plugintest.Run(t, Name, &plugintest.Host{Net: plugintest.Loopback{}}).Tools()[0]
	res, err := call(t, tool, map[string]any{"query": "x"})
	if err != nil || !res.IsError || !strings.Contains(res.Text, "could not reach "+addr+": the connection was refused") {
		t.Fatalf("%v %+v", err, res)
	}
}
