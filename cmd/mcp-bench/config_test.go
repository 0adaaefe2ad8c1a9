package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    *config // only the fields compared below
		wantErr string
	}{
		{name: "ok/defaults", args: "-- srv serve",
			want: &config{Method: "ping", Calls: 1000, Concurrency: 1, Warmup: 100, Runs: 1, Protocol: defaultProtocol,
				Duration: time.Minute, Timeout: 10 * time.Second, Server: []string{"srv", "serve"}}},
		{name: "ok/tool-with-args", args: `--tool echo --args {"text":"hi"} --calls 5 --concurrency 32 -- srv`,
			want: &config{Method: "tools/call", Tool: "echo", Params: json.RawMessage(`{"arguments":{"text":"hi"},"name":"echo"}`),
				Calls: 5, Concurrency: 32, Warmup: 100, Runs: 1, Protocol: defaultProtocol,
				Duration: time.Minute, Timeout: 10 * time.Second, Server: []string{"srv"}}},
		{name: "ok/method-params", args: `--method tools/list --params {"cursor":"x"} --runs 3 --warmup 0 -- srv`,
			want: &config{Method: "tools/list", Params: json.RawMessage(`{"cursor":"x"}`), Calls: 1000, Concurrency: 1, Runs: 3,
				Protocol: defaultProtocol, Duration: time.Minute, Timeout: 10 * time.Second, Server: []string{"srv"}}},
		{name: "ok/compare", args: "--duration 2s -- a --flag --compare -- b x y",
			want: &config{Method: "ping", Calls: 1000, Concurrency: 1, Warmup: 100, Runs: 1, Protocol: defaultProtocol,
				Duration: 2 * time.Second, Timeout: 10 * time.Second, Server: []string{"a", "--flag"}, Compare: []string{"b", "x", "y"}}},
		{name: "ok/compare-word-in-server-args", args: "-- a --compare x",
			want: &config{Method: "ping", Calls: 1000, Concurrency: 1, Warmup: 100, Runs: 1, Protocol: defaultProtocol,
				Duration: time.Minute, Timeout: 10 * time.Second, Server: []string{"a", "--compare", "x"}}},
		{name: "bad/no-server", args: "--calls 3", wantErr: "no server command"},
		{name: "bad/empty-compare", args: "-- a --compare --", wantErr: "--compare -- needs a command"},
		{name: "bad/args-not-object", args: "--tool t --args [1] -- a", wantErr: "--args: want a JSON object"},
		{name: "bad/params-not-json", args: "--method x --params {nope -- a", wantErr: "--params: want a JSON object"},
		{name: "bad/tool-and-other-method", args: "--tool t --method ping -- a", wantErr: "--tool calls tools/call"},
		{name: "bad/tools-call-without-tool", args: "--method tools/call -- a", wantErr: "name the tool with --tool"},
		{name: "bad/zero-calls", args: "--calls 0 -- a", wantErr: "--calls"},
		{name: "bad/too-many-calls", args: "--calls 100000001 -- a", wantErr: "--calls"},
		{name: "bad/concurrency", args: "--concurrency 0 -- a", wantErr: "--concurrency"},
		{name: "bad/duration", args: "--duration 0s -- a", wantErr: "--duration"},
		{name: "bad/runs", args: "--runs 0 -- a", wantErr: "--runs"},
		{name: "bad/unknown-flag", args: "--nope -- a", wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(strings.Fields(tt.args), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestTemplate(t *testing.T) {
	for _, proto := range []string{defaultProtocol, statelessProtocol} {
		t.Run(proto, func(t *testing.T) {
			cfg := &config{Protocol: proto}
			pre, suf := requestTemplate(cfg, "tools/call", json.RawMessage(`{"name":"x","arguments":{}}`))
			line := string(pre) + "42" + string(suf)
			if !strings.HasSuffix(line, "}\n") {
				t.Fatalf("line does not end with a newline: %q", line)
			}
			var msg struct {
				JSONRPC string `json:"jsonrpc"`
				ID      int
				Method  string
				Params  struct {
					Name string
					Meta map[string]json.RawMessage `json:"_meta"`
				}
			}
			if err := json.Unmarshal([]byte(line), &msg); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if msg.JSONRPC != "2.0" || msg.ID != 42 || msg.Method != "tools/call" || msg.Params.Name != "x" {
				t.Errorf("decoded %+v", msg)
			}
			_, hasMeta := msg.Params.Meta["io.modelcontextprotocol/protocolVersion"]
			if hasMeta != (proto == statelessProtocol) {
				t.Errorf("protocol %s: _meta protocolVersion present = %v", proto, hasMeta)
			}
		})
	}
}

func TestFreshEnv(t *testing.T) {
	got := freshEnv([]string{"PATH=/bin", "HOME=/root", "XDG_CONFIG_HOME=/etc/x", "KEEP=1"}, "/tmp/h")
	want := []string{"PATH=/bin", "KEEP=1", "HOME=/tmp/h", "XDG_CONFIG_HOME=/tmp/h/.config",
		"XDG_DATA_HOME=/tmp/h/.local/share", "XDG_STATE_HOME=/tmp/h/.local/state", "XDG_CACHE_HOME=/tmp/h/.cache"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}
