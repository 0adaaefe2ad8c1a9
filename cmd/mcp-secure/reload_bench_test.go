//go:build unix

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// benchModules are five user modules, one per decision package and one
// reading the session's history.
var benchModules = map[string]string{
	"no_secret_search.rego": `package mcp.tools

credential_pattern := ` + "`password|passwd|secret|api ?key|private key|token`" + `

deny contains "searching for credentials is not allowed" if {
	input.tool in {"search_tools", "web_search", "search_bugs_global"}
	regex.match(credential_pattern, lower(input.arguments.query))
}
`,
	"session.rego": `package mcp.tools

deny contains "no web_search after a denied file read in this session" if {
	input.tool == "web_search"
	some event in input.session.history
	event.kind == "filesystem"
	event.result == "deny"
}
`,
	"tls_only.rego": `package mcp.network

deny contains sprintf("web_search may only use port 443, not %d", [input.port]) if {
	input.tool == "web_search"
	input.phase == "dial"
	input.port != 443
}
`,
	"no_keys.rego": `package mcp.filesystem

deny contains sprintf("%s looks like a key file", [input.path]) if {
	some suffix in {".pem", ".key", ".p12"}
	endswith(lower(input.path), suffix)
}
`,
	"no_force_push.rego": `package mcp.commands

deny contains "git push --force is not allowed" if {
	input.name == "git"
	"push" in input.argv
	some arg in input.argv
	startswith(arg, "--force")
}
`,
}

// BenchmarkReload measures a whole reload (read, check exactly as at
// start-up, build and warm the engine, swap, audit) of the default
// policy with five user modules, while a goroutine decides tool calls
// without pause. max-decide-µs is the longest of those decisions during
// the reloads, baseline-max-µs the longest in as many decisions without
// a reload: a decision never waits for a reload (the swap is one atomic
// store), so the two differ only by CPU contention.
func BenchmarkReload(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	b.Setenv("HOME", dir)
	b.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	b.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	b.Setenv("MCP_SECURE_WORKSPACE", filepath.Join(dir, "ws"))
	var names []string
	for name, src := range benchModules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
		names = append(names, name)
	}
	base := string(policy.EmbeddedYAML()) + "\nrego:\n  modules: [" + strings.Join(names, ", ") + "]\n"
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(base), 0o644); err != nil {
		b.Fatal(err)
	}
	chk, err := checkPolicy(ctx, file)
	if err != nil {
		b.Fatal(err)
	}
	if len(chk.cfg.UserModules) != 5 {
		b.Fatalf("%d user modules", len(chk.cfg.UserModules))
	}
	chk.eng.Warm(ctx)
	r, err := newReloader(chk, file, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	sink, err := audit.Open(chk.pol.Audit.LogFile, nil)
	if err != nil {
		b.Fatal(err)
	}
	alog := audit.New(sink, nil)
	defer alog.Close()
	r.audit = alog

	revision := 0
	reloads := func(b *testing.B) {
		for range b.N {
			revision++ // a new hash: not "unchanged"
			if err := os.WriteFile(file, fmt.Appendf(nil, "%s# revision %d\n", base, revision), 0o644); err != nil {
				b.Fatal(err)
			}
			if !r.reload(ctx, "bench") {
				b.Fatal("reload not applied")
			}
		}
	}
	b.Run("alone", func(b *testing.B) {
		before := cpuTime()
		reloads(b)
		b.ReportMetric(float64((cpuTime()-before).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	})
	b.Run("with-decisions", func(b *testing.B) {
		in := engine.ToolInput{Tool: "search_tools", Registered: true}.Value()
		// decide decides without pause until stop, and returns each
		// decision's latency (at most a million).
		decide := func(stop <-chan struct{}) []time.Duration {
			var lat []time.Duration
			for len(lat) < 1e6 {
				select {
				case <-stop:
					return lat
				default:
				}
				t0 := time.Now()
				if _, err := chk.eng.Decide(ctx, engine.Tools, in); err != nil {
					panic(err)
				}
				lat = append(lat, time.Since(t0))
			}
			return lat
		}
		run := func(work func()) []time.Duration {
			stop := make(chan struct{})
			var lat []time.Duration
			var wg sync.WaitGroup
			wg.Go(func() { lat = decide(stop) })
			work()
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			return lat
		}
		b.ResetTimer()
		during := run(func() { reloads(b) })
		elapsed := b.Elapsed()
		b.StopTimer()
		baseline := run(func() { time.Sleep(elapsed) })
		q := func(lat []time.Duration, p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
		}
		b.ReportMetric(q(during, 0.99), "p99-decide-µs")
		b.ReportMetric(q(during, 0.999), "p99.9-decide-µs")
		b.ReportMetric(q(during, 1), "max-decide-µs")
		b.ReportMetric(q(baseline, 0.99), "baseline-p99-µs")
		b.ReportMetric(q(baseline, 0.999), "baseline-p99.9-µs")
		b.ReportMetric(q(baseline, 1), "baseline-max-µs")
		b.ReportMetric(float64(len(during)), "decisions")
	})
}
