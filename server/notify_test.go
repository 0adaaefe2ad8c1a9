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

// bigLogPlugin's tool logs data past the cap, with a secret under a
// sensitive key.
type bigLogPlugin struct{}

func (bigLogPlugin) Info() plugin.Info { return plugin.Info{Name: "biglog", Version: "0.0.1"} }

func (bigLogPlugin) Tools() []plugin.Tool {
	return []plugin.Tool{{Name: "big_log", Description: "logs", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
			// The nested secret is no string under a sensitive key: only
			// structural redaction, before the data is cut to text,
			// removes it.
			c.Session.Log(ctx, "warning", "big", map[string]any{"api_key": "k-abc-plain",
				"credentials": map[string]any{"value": "nested-plain"}, "padding": strings.Repeat("x", 20<<10)})
			return &plugin.Result{Text: "logged"}, nil
		}}}
}

// Log data past the cap is redacted whole (values under sensitive keys)
// before it is cut, and reaches the client within the cap.
func TestLargeLogDataIsRedactedBeforeItIsCapped(t *testing.T) {
	s, err := New(Options{Engine: toolsEngine(t), Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: &fakeAuditor{},
		Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{bigLogPlugin{}}})
	if err != nil {
		t.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	logs := make(chan string, 4)
	client := mcp.NewClient(&mcp.Implementation{Name: "unit", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			raw, _ := json.Marshal(r.Params.Data)
			logs <- string(raw)
		}})
	cs, err := client.Connect(t.Context(), &mcp.IOTransport{Reader: cIn, Writer: cOut}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); cancel(); cOut.Close(); <-done })
	if err := cs.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "big_log", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("big_log = %v, %v", res, err)
	}
	select {
	case got := <-logs:
		if strings.Contains(got, "k-abc-plain") || strings.Contains(got, "nested-plain") {
			t.Errorf("a value under a sensitive key reached the client: %.160s", got)
		}
		if len(got) > maxLogData+200 || !strings.Contains(got, "truncated") {
			t.Errorf("log data of %d bytes, want it cut near %d", len(got), maxLogData)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no log message")
	}
}
