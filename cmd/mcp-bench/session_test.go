package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cannedBin is the canned floor server and relayBin the proxy floor,
// built once for the package's tests.
var cannedBin, relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcp-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cannedBin = filepath.Join(dir, "canned")
	relayBin = filepath.Join(dir, "relay")
	for bin, pkg := range map[string]string{cannedBin: "./internal/canned", relayBin: "./internal/relay"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testConfig(t *testing.T, args ...string) *config {
	t.Helper()
	cfg, err := parseArgs(append(args, "--", cannedBin), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRunCountsWhatItSent drives the canned server as a real subprocess
// and checks the requests it sent, the answers it counted and the
// requests the server says it read all agree.
func TestRunCountsWhatItSent(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"lockstep/ping", []string{"--calls", "50", "--warmup", "5"}},
		{"pipelined/tool", []string{"--tool", "list_categories", "--calls", "300", "--warmup", "10", "--concurrency", "16"}},
		{"stateless/tools-list", []string{"--method", "tools/list", "--calls", "40", "--warmup", "0", "--protocol", statelessProtocol}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, tt.args...)
			countFile := filepath.Join(t.TempDir(), "count")
			res, err := runOnce(cfg, []string{cannedBin, "-count", countFile}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != cfg.Calls || res.Answered != cfg.Calls || res.OK != cfg.Calls {
				t.Errorf("sent %d, answered %d, ok %d; want %d each", res.Sent, res.Answered, res.OK, cfg.Calls)
			}
			if len(res.Errors) != 0 {
				t.Errorf("errors %v, want none", res.Errors)
			}
			data, err := os.ReadFile(countFile)
			if err != nil {
				t.Fatalf("the server wrote no count: %v", err)
			}
			read, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			if want := 1 + cfg.Warmup + cfg.Calls; read != want { // the handshake, the warmup and the measured calls
				t.Errorf("server read %d requests, want %d", read, want)
			}
			if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
				t.Errorf("latency summary out of order: %+v", res.Latency)
			}
			if res.SpawnToHandshake <= 0 || res.SpawnToFirstAnswer < res.SpawnToHandshake {
				t.Errorf("spawn to handshake %v, to first answer %v", res.SpawnToHandshake, res.SpawnToFirstAnswer)
			}
			if res.PeakRSSKiB <= 0 || res.CPUUser+res.CPUSys <= 0 {
				t.Errorf("peak RSS %d KiB, CPU %v+%v: want both measured", res.PeakRSSKiB, res.CPUUser, res.CPUSys)
			}
			if res.ExitCode != 0 {
				t.Errorf("server exit code %d", res.ExitCode)
			}
		})
	}
}

// TestRelayForwardsEverything runs a workload through the relay (the
// proxy floor) to the canned server: every request reaches the server,
// every answer comes back, and both end when the input ends.
func TestRelayForwardsEverything(t *testing.T) {
	cfg := testConfig(t, "--tool", "c__echo", "--args", `{"text":"hi"}`, "--calls", "200", "--warmup", "5", "--concurrency", "8")
	countFile := filepath.Join(t.TempDir(), "count")
	res, err := runOnce(cfg, []string{relayBin, cannedBin, "-count", countFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered != cfg.Calls || res.OK != cfg.Calls || len(res.Errors) != 0 {
		t.Errorf("answered %d, ok %d, errors %v; want %d answered and ok", res.Answered, res.OK, res.Errors, cfg.Calls)
	}
	data, err := os.ReadFile(countFile)
	if err != nil {
		t.Fatalf("the server behind the relay wrote no count (its input did not end?): %v", err)
	}
	if read, _ := strconv.Atoi(strings.TrimSpace(string(data))); read != 1+cfg.Warmup+cfg.Calls {
		t.Errorf("server read %d requests, want %d", read, 1+cfg.Warmup+cfg.Calls)
	}
	if res.ExitCode != 0 {
		t.Errorf("relay exit code %d", res.ExitCode)
	}
}

// TestPauseSpacesRequests checks --pause: every measured request after
// the first waits the pause after the answer before it, so the measured
// phase lasts at least the pauses (a lower bound a slow machine cannot
// break).
func TestPauseSpacesRequests(t *testing.T) {
	const pause = 30 * time.Millisecond
	cfg := testConfig(t, "--calls", "8", "--warmup", "2", "--pause", pause.String())
	res, err := runOnce(cfg, []string{cannedBin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered != cfg.Calls || res.OK != cfg.Calls {
		t.Fatalf("answered %d, ok %d; want %d", res.Answered, res.OK, cfg.Calls)
	}
	if want := time.Duration(cfg.Calls-1) * pause; res.Elapsed < want {
		t.Errorf("measured phase %v, want at least %v (%d pauses of %v)", res.Elapsed, want, cfg.Calls-1, pause)
	}
	for _, bad := range [][]string{{"--pause", "10ms", "--concurrency", "2"}, {"--pause", "-1s"}} {
		if _, err := parseArgs(append(bad, "--", cannedBin), io.Discard); err == nil || !strings.Contains(err.Error(), "--pause") {
			t.Errorf("%v: err = %v, want a --pause error", bad, err)
		}
	}
}

// TestErrorKinds checks each way an answer can fail is counted under its
// own kind.
func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name string
		args []string
		kind string
	}{
		{"isError-result", []string{"--tool", "fail"}, kindIsError},
		{"jsonrpc-invalid-params", []string{"--tool", "bad"}, "jsonrpc -32602"},
		{"jsonrpc-method-not-found", []string{"--method", "no/such"}, "jsonrpc -32601"},
		{"timeout", []string{"--tool", "hang", "--timeout", "200ms", "--concurrency", "2"}, kindTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, append(tt.args, "--calls", "4", "--warmup", "0")...)
			res, err := runOnce(cfg, []string{cannedBin}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != 4 || res.OK != 0 {
				t.Errorf("sent %d, ok %d; want 4 and 0", res.Sent, res.OK)
			}
			if len(res.Errors) != 1 || res.Errors[tt.kind] != 4 {
				t.Errorf("errors %v, want only %s ×4", res.Errors, tt.kind)
			}
			if tt.kind != kindTimeout && !strings.Contains(res.ErrorSamples[tt.kind], `"id":`) {
				t.Errorf("no sample answer for %s: %v", tt.kind, res.ErrorSamples)
			}
			if tt.kind == kindTimeout && res.Answered != 0 {
				t.Errorf("answered %d requests the server never answered", res.Answered)
			}
		})
	}
}

func TestServerThatDies(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"exits-at-once", []string{"sh", "-c", "echo gone >&2; exit 3"}, "gone"},
		{"not-a-command", []string{filepath.Join(t.TempDir(), "missing")}, "start"},
		{"answers-garbage", []string{"sh", "-c", "read line; echo '{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32600,\"message\":\"no\"}}'"}, "handshake: error -32600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "--calls", "3", "--timeout", "5s")
			_, err := runOnce(cfg, tt.argv, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCompareInterleavesAndRatios(t *testing.T) {
	cfg := testConfig(t, "--calls", "20", "--warmup", "2", "--runs", "3", "--quiet")
	cfg.Compare = []string{cannedBin}
	rep, err := benchmark(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Servers) != 2 {
		t.Fatalf("%d servers reported, want 2", len(rep.Servers))
	}
	for _, s := range rep.Servers {
		if len(s.Runs) != 3 {
			t.Errorf("server %s: %d runs, want 3", s.Label, len(s.Runs))
		}
		if got := sum(s.Runs, func(r *runResult) int { return r.Answered }); got != 60 {
			t.Errorf("server %s: %d answered, want 60", s.Label, got)
		}
	}
	if _, ok := rep.Ratios["p50_us"]; !ok {
		t.Errorf("no p50 ratio in %v", rep.Ratios)
	}
	var b strings.Builder
	if err := rep.writeText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A/B", "p50", "throughput", "A answered: 60 of 60 sent; errors (all runs): none"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestDurationEndsTheRun(t *testing.T) {
	cfg := testConfig(t, "--tool", "hang", "--calls", "1000", "--duration", "300ms", "--timeout", "100ms", "--warmup", "0")
	res, err := runOnce(cfg, []string{cannedBin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent >= 1000 {
		t.Errorf("sent all %d calls despite --duration", res.Sent)
	}
	if res.Errors[kindTimeout] != res.Sent {
		t.Errorf("%d sent, %v errors: every unanswered call should be a timeout", res.Sent, res.Errors)
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"--calls", "5", "--warmup", "0", "--json", "--", cannedBin}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"p50_us"`) {
		t.Errorf("JSON output lacks p50_us:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"--calls", "5", "--warmup", "0", "--markdown", "--title", "T", "--", cannedBin}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"### T\n", "| p50 |", "| answered / sent (all runs) | 5 / 5 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, out.String())
		}
	}
	summary := filepath.Join(t.TempDir(), "summary.md")
	for range 2 {
		if code := run([]string{"--calls", "3", "--warmup", "0", "--summary", summary, "--title", "S", "--", cannedBin}, io.Discard, &errb); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	}
	rows, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(rows), "| S |"); n != 2 {
		t.Errorf("summary has %d rows, want 2:\n%s", n, rows)
	}
	if !strings.HasPrefix(string(rows), summaryHeader) {
		t.Errorf("summary does not start with its header:\n%s", rows)
	}
	lines := strings.Split(strings.TrimSpace(string(rows)), "\n")
	if len(lines) != 4 || strings.Count(lines[3], "|") != strings.Count(lines[0], "|") {
		t.Errorf("want a header, a rule and two rows with as many cells as the header:\n%s", rows)
	}
	if code := run([]string{"--json", "--markdown", "--", cannedBin}, &out, io.Discard); code != exitUsage {
		t.Errorf("--json with --markdown: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"--calls", "x"}, &out, &errb); code != exitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"--calls", "2", "--", "sh", "-c", "exit 1"}, &out, io.Discard); code != exitFail {
		t.Errorf("dead server: exit %d, want %d", code, exitFail)
	}
}

func TestAnswerMatching(t *testing.T) {
	s := &session{
		cfg:     &config{},
		pending: map[int64]pendingReq{},
		errs:    map[string]int{},
		samples: map[string]string{},
		slots:   make(chan struct{}, 4),
		handshk: make(chan response, 1),
	}
	s.record = true
	for _, id := range []int64{5, 6, 7} {
		s.pending[id] = pendingReq{start: s.spawn, measured: true}
		s.slots <- struct{}{}
	}
	at := s.spawn.Add(1)
	for _, line := range []string{
		`{"jsonrpc":"2.0","id":5,"result":{}}`,
		`{"jsonrpc":"2.0","id":"6","result":{"isError":true}}`, // an id echoed as a string
		`{"jsonrpc":"2.0","method":"notifications/message","params":{}}`,
		`{"jsonrpc":"2.0","id":99,"result":{}}`, // never sent
		`not json`,
		`{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"busy"}}`,
	} {
		s.answer([]byte(line), at)
	}
	if s.answered != 3 || s.ok != 1 || len(s.pending) != 0 || len(s.slots) != 0 {
		t.Errorf("answered %d, ok %d, pending %d, slots held %d; want 3, 1, 0, 0", s.answered, s.ok, len(s.pending), len(s.slots))
	}
	want := map[string]int{kindIsError: 1, "jsonrpc -32000": 1, kindBadJSON: 1}
	if len(s.errs) != len(want) {
		t.Errorf("errors %v, want %v", s.errs, want)
	}
	for k, v := range want {
		if s.errs[k] != v {
			t.Errorf("errors %v, want %v", s.errs, want)
		}
	}
}
