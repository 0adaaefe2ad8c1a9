package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

func TestUsesSession(t *testing.T) {
	tests := map[string]struct {
		src  string
		want bool
	}{
		"no/tool only":        {src: "package mcp.tools\n\ndeny contains \"x\" if input.tool == \"a\"\n"},
		"no/data only":        {src: "package mcp.tools\n\ndeny contains \"x\" if data.mcp.policy.x\n"},
		"no/other key":        {src: "package mcp.tools\n\ndeny contains \"x\" if input[\"arguments\"].q == \"a\"\n"},
		"yes/session ref":     {src: "package mcp.tools\n\ndeny contains \"x\" if input.session.counts.deny > 3\n", want: true},
		"yes/session bracket": {src: "package mcp.tools\n\ndeny contains \"x\" if input[\"session\"].counts.deny > 3\n", want: true},
		"yes/variable key":    {src: "package mcp.tools\n\ndeny contains k if some k, _ in input\n", want: true},
		"yes/whole input":     {src: "package mcp.tools\n\nf(x) := x\n\ndeny contains \"x\" if f(input).session\n", want: true},
		"yes/import":          {src: "package mcp.tools\n\nimport input.session as s\n\ndeny contains \"x\" if s.counts.deny > 3\n", want: true},
		"yes/nested key":      {src: "package mcp.tools\n\ndeny contains \"x\" if input.arguments[input.session.x]\n", want: true},
		"yes/unparsable":      {src: "package mcp.tools\n\ndeny contains", want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := usesSession(map[string]string{"m.rego": tc.src}); got != tc.want {
				t.Fatalf("usesSession = %v, want %v", got, tc.want)
			}
		})
	}
}

// sessionLog is a session whose third call was denied for what came
// before it: a denied file read. s2 is another session.
func sessionLog(inFlight bool) []audit.Record {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	call := func(session, result string, at, took time.Duration, reasons ...string) audit.Record {
		r := toolCall("list_categories", result, map[string]any{}, reasons...)
		r.SessionID, r.Timestamp, r.DurationNS = session, t0.Add(at), took.Nanoseconds()
		return r
	}
	third := call("s1", audit.ResultDeny, 3*time.Second, time.Millisecond, sessionReason)
	if inFlight {
		third.DurationNS = (1500 * time.Millisecond).Nanoseconds() // it arrived before the read
	}
	return []audit.Record{
		call("s1", audit.ResultAllow, time.Second, time.Millisecond),
		{DecisionID: audit.NewID(), SessionID: "s1", Timestamp: t0.Add(2 * time.Second), Kind: audit.KindFilesystem,
			Path: "mcp/filesystem/decision", Tool: "add_bug", Result: audit.ResultDeny,
			Input: map[string]any{"path": "/etc/shadow", "operation": "read"}},
		third,
		call("s2", audit.ResultAllow, 4*time.Second, time.Millisecond),
	}
}

const sessionReason = "no list_categories after a denied file read in this session"

const sessionRule = `package mcp.tools

deny contains "` + sessionReason + `" if {
	input.tool == "list_categories"
	some event in input.session.history
	event.kind == "filesystem"
	event.result == "deny"
}
`

// TestReplaySessionHistory replays a log under a policy whose rule reads
// input.session: the history is rebuilt from the records, so the call
// the rule denied is denied again; where the log does not hold the
// history whole the call is reported as not replayable.
func TestReplaySessionHistory(t *testing.T) {
	dir := cliHome(t)
	writeFile(t, dir, "session.rego", sessionRule)
	withRule := writeFile(t, dir, "with.yaml", "version: \"1.0\"\nrego:\n  modules: [session.rego]\n")
	without := writeFile(t, dir, "without.yaml", "version: \"1.0\"\n")

	whole := filepath.Join(dir, "whole.log")
	writeLog(t, whole, sessionLog(false))
	lines := strings.SplitAfter(strings.TrimSpace(readText(t, whole)), "\n")
	partial := writeFile(t, dir, "partial.log", strings.Join(lines[2:], "")) // no genesis, no first call
	inFlight := filepath.Join(dir, "inflight.log")
	writeLog(t, inFlight, sessionLog(true))
	// Between the denied read and the call, other sessions had a
	// decision each: as many as the server keeps, or one fewer.
	crowd := func(others int) string {
		recs := sessionLog(false)
		var mid []audit.Record
		for i := range others {
			r := recs[3]
			r.DecisionID, r.SessionID = audit.NewID(), fmt.Sprintf("other-%d", i)
			r.Timestamp = recs[1].Timestamp.Add(time.Duration(i+1) * time.Microsecond)
			mid = append(mid, r)
		}
		path := filepath.Join(dir, fmt.Sprintf("crowd-%d.log", others))
		writeLog(t, path, slices.Concat(recs[:2], mid, recs[2:]))
		return path
	}
	kept, forgotten := crowd(engine.DefaultHistoryKeep-1), crowd(engine.DefaultHistoryKeep)
	// Refusals past the budget, counted from 1.5 s on, summarised after
	// the last call: for s1, or for another session.
	budget := func(name, session string) string {
		recs := sessionLog(false)
		from := recs[1].Timestamp.Add(-500 * time.Millisecond)
		sum := audit.Record{DecisionID: audit.NewID(), SessionID: session, Kind: audit.KindSummary, Tool: "list_categories",
			Result: audit.ResultDeny, Count: 40, Timestamp: recs[3].Timestamp.Add(time.Second),
			Input: map[string]any{"refusal": "validation", "from": from.Format(time.RFC3339Nano), "to": from.Add(time.Second).Format(time.RFC3339Nano)}}
		path := filepath.Join(dir, name)
		writeLog(t, path, append(recs, sum))
		return path
	}
	flooded, floodedElsewhere := budget("flooded.log", "s1"), budget("flooded-elsewhere.log", "s3")
	noTime := filepath.Join(dir, "notime.log")
	writeLogOpts(t, noTime, sessionLog(false), &audit.Options{OmitDuration: true})

	const notReplayable = "tool_call (not replayable: uses session history; "
	tests := map[string]struct {
		log, policy string
		code        int
		want        []string
		not         []string
	}{
		"whole log, same policy": {log: whole, policy: withRule,
			want: []string{"replayed 4 decisions", "would change: 0 "}, not: []string{"not replayable"}},
		"whole log, rule removed": {log: whole, policy: without, code: 1,
			want: []string{"would change: 1 (allow -> deny 0, deny -> allow 1)", "whole.log:4 "}},
		"partial log": {log: partial, policy: withRule,
			want: []string{"not replayed: 2 " + notReplayable + whyBefore + ")", "would change: 0 "}},
		"partial log, policy without session": {log: partial, policy: without, code: 1,
			want: []string{"replayed 3 decisions", "deny -> allow 1"}, not: []string{"not replayable"}},
		"calls in flight together": {log: inFlight, policy: withRule,
			want: []string{"not replayed: 1 " + notReplayable + whyInFlight + ")", "replayed 3 decisions"}},
		"other sessions, fewer than the server keeps": {log: kept, policy: withRule,
			want: []string{"would change: 0 "}, not: []string{"not replayable"}},
		"other sessions, as many as the server keeps": {log: forgotten, policy: withRule,
			want: []string{"not replayed: 1 " + notReplayable + whyForgotten + ")", "would change: 0 "}},
		"refusals past the budget": {log: flooded, policy: withRule,
			want: []string{"not replayed: 1 " + notReplayable + whyBudget + ")", "replayed 3 decisions"}},
		"refusals past the budget, another session": {log: floodedElsewhere, policy: withRule,
			want: []string{"replayed 4 decisions", "would change: 0 "}, not: []string{"not replayable"}},
		"durations not recorded": {log: noTime, policy: withRule,
			want: []string{"not replayed: 1 " + notReplayable + whyNoTime + ")", "replayed 3 decisions"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "policy", "replay", tc.log, "--policy", tc.policy)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("%q in:\n%s", w, out)
				}
			}
		})
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeLogOpts is writeLog with logger options.
func writeLogOpts(t testing.TB, path string, recs []audit.Record, opts *audit.Options) {
	t.Helper()
	sink, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(sink, opts)
	for _, r := range recs {
		if err := log.Log(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkReplaySession is BenchmarkReplay under a policy that reads
// input.session: 100,000 records of 50 sessions, whose histories are
// rebuilt as they are read.
func BenchmarkReplaySession(b *testing.B) {
	dir := b.TempDir()
	b.Setenv("HOME", dir)
	b.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	logFile := filepath.Join(dir, "audit.log")
	const n = 100_000
	base := replayLog(filepath.Join(dir, "ws"))[:7]
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	recs := make([]audit.Record, 0, n)
	for i := range n {
		r := base[i%len(base)]
		r.SessionID = fmt.Sprintf("s%d", i%50)
		r.Timestamp, r.DurationNS = t0.Add(time.Duration(i)*time.Millisecond), (100 * time.Microsecond).Nanoseconds()
		if r.Kind == audit.KindToolCall {
			in := r.Input.(map[string]any)
			r.Input = map[string]any{"tool": in["tool"], "arguments": map[string]any{"query": fmt.Sprintf("query %d", i)}, "protocol_version": "2025-11-25"}
		}
		recs = append(recs, r)
	}
	writeLog(b, logFile, recs)
	pol := filepath.Join(dir, "p.yaml")
	os.WriteFile(pol, []byte("rego:\n  modules: [r.rego]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "r.rego"), []byte("package mcp.tools\n\ndeny contains \"no\" if input.session.counts.deny > 1000000\n"), 0o644)
	chk, err := checkPolicy(context.Background(), pol)
	if err != nil {
		b.Fatal(err)
	}
	if !usesSession(chk.cfg.UserModules) {
		b.Fatal("the policy does not read input.session")
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	decided := 0
	for range b.N {
		r := &replayer{eng: chk.eng, tools: chk.tools, session: true}
		rep, err := r.replay(context.Background(), []string{logFile})
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.skipped) > 0 && rep.replayed == 0 {
			b.Fatalf("nothing replayed: %v", rep.skipped)
		}
		decided += rep.replayed
	}
	b.ReportMetric(float64(decided)/time.Since(start).Seconds(), "decisions/s")
	b.ReportMetric(float64(decided)/(cpuTime()-cpu0).Seconds(), "decisions/cpu-s")
}
