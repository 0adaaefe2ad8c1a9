//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkExternalCall measures one tools/call over the real binary:
// a built-in tool (the pipeline's own cost), the trivial Go fixture per
// call and persistent, and the fixture run directly without the server
// (the floor of starting a process). The overhead of an external tool is
// its time minus the built-in's; for a per-call plugin, what the server
// adds to starting the tool yourself is the spaced variant's over-direct.
//
//	go test ./cmd/mcp-secure -run '^$' -bench BenchmarkExternalCall -benchtime 300x -count 5
func BenchmarkExternalCall(b *testing.B) {
	bin := extFixtureB(b)
	for _, c := range []struct {
		name, tool, mode string
		args             map[string]any
	}{
		{"builtin-list_categories", "list_categories", "", map[string]any{}},
		{"external-per-call", "fx_echo", "", map[string]any{"text": "x"}},
		{"external-persistent", "fx_echo", "mode: persistent\nargs: [--persistent]\n", map[string]any{"text": "x"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			cs := benchServer(b, bin, c.mode)
			ctx := context.Background()
			call := func() {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
				if err != nil {
					b.Fatalf("call %s: %v", c.tool, err)
				}
				if res.IsError {
					b.Fatalf("call %s: %s", c.tool, text(res))
				}
			}
			for range 5 { // warm up: the persistent process starts here
				call()
			}
			b.ResetTimer()
			for b.Loop() {
				call()
			}
		})
	}
	// Paired: each iteration calls the built-in tool and the external one
	// on the same server, so machine noise hits both; the metrics are the
	// medians and the median of the per-iteration differences. Back to
	// back, a call's launcher is refilled while the next call runs (their
	// start-ups share the processors); spaced, each call finds the server
	// idle, as a call from a person's assistant does, and the iteration
	// also runs the fixture directly, idle too: over-direct is what the
	// server adds to starting the tool yourself.
	for _, mode := range []struct {
		name, extra string
		pause       time.Duration
	}{
		{"paired-persistent", "mode: persistent\nargs: [--persistent]\n", 0},
		{"paired-per-call", "", 0},
		{"paired-per-call-spaced", "", 50 * time.Millisecond},
	} {
		b.Run(mode.name, func(b *testing.B) {
			cs := benchServer(b, bin, mode.extra)
			ctx := context.Background()
			timed := func(tool string, args map[string]any) time.Duration {
				start := time.Now()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
				took := time.Since(start)
				if err != nil || res.IsError {
					b.Fatalf("call %s: %v %v", tool, err, res)
				}
				return took
			}
			pause := func() {
				b.StopTimer()
				time.Sleep(mode.pause)
				b.StartTimer()
			}
			for range 5 {
				timed("fx_echo", map[string]any{"text": "x"})
			}
			var builtin, ext, diff, direct, over []time.Duration
			var directCPU time.Duration
			cpu0 := serverCPU(b, cs)
			b.ResetTimer()
			for b.Loop() {
				if mode.pause > 0 {
					pause()
					d, cpu := runDirect(b, bin)
					direct, directCPU = append(direct, d), directCPU+cpu
					pause()
				}
				a := timed("list_categories", map[string]any{})
				e := timed("fx_echo", map[string]any{"text": "x"})
				builtin, ext, diff = append(builtin, a), append(ext, e), append(diff, e-a)
				if mode.pause > 0 {
					over = append(over, e-direct[len(direct)-1])
				}
			}
			b.StopTimer()
			cpu1 := serverCPU(b, cs)
			// CPU time is what the machine's load does not stretch: the
			// server's own, and that of the processes it started and
			// reaped (launchers, and the plugin processes below them).
			b.ReportMetric(float64((cpu1.self-cpu0.self).Microseconds())/float64(len(diff)), "server-cpu-µs/op")
			b.ReportMetric(float64((cpu1.children-cpu0.children).Microseconds())/float64(len(diff)), "children-cpu-µs/op")
			med := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2].Microseconds())
			}
			b.ReportMetric(med(builtin), "builtin-p50-µs")
			b.ReportMetric(med(ext), "external-p50-µs")
			b.ReportMetric(med(diff), "added-p50-µs")
			if len(direct) > 0 {
				b.ReportMetric(med(direct), "direct-p50-µs")
				b.ReportMetric(float64(directCPU.Microseconds())/float64(len(direct)), "direct-cpu-µs/op")
				b.ReportMetric(med(over), "over-direct-p50-µs")
			}
		})
	}
	b.Run("direct-exec-no-server", func(b *testing.B) {
		for b.Loop() {
			runDirect(b, bin)
		}
	})
}

// runDirect runs the fixture plugin as the server would, without it: one
// request on stdin, its answer read to the end. It returns the time that
// took and the CPU time of the process.
func runDirect(b *testing.B, bin string) (took, cpu time.Duration) {
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(`{"tool":"fx_echo","arguments":{"text":"x"}}` + "\n")
	start := time.Now()
	out, err := cmd.Output()
	took = time.Since(start)
	if err != nil || !strings.Contains(string(out), "text=x") {
		b.Fatalf("%v %s", err, out)
	}
	return took, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func extFixtureB(b *testing.B) string {
	fixtureOnce.Do(func() {
		fixtureBin = filepath.Join(filepath.Dir(binPath), "extfixture")
		out, err := exec.Command("go", "build", "-o", fixtureBin, "./testdata/extfixture").CombinedOutput()
		if err != nil {
			fixtureErr = fmt.Errorf("building the fixture plugin: %v\n%s", err, out)
		}
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixtureBin
}

// benchServer starts the binary with the fixture plugin (manifest extra)
// and connects a client.
func benchServer(b *testing.B, bin, extra string) *mcp.ClientSession {
	dir := b.TempDir()
	plug := filepath.Join(dir, "plugins", "fx")
	ws := filepath.Join(dir, "ws")
	for _, d := range []string{plug, ws} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(plug, "fx"), data, 0o755)
	os.WriteFile(filepath.Join(plug, "manifest.yaml"), []byte(fxManifest("fx", "fx", extra)), 0o644)
	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte(fmt.Sprintf(`version: "1.0"
filesystem:
  allowed_paths: ["%s/**"]
audit:
  log_file: "%s/logs/audit.log"
tools:
  timeout: 10
  rate_limits:
    default: 1000000
plugins:
  external: [plugins/fx]
`, ws, dir)), 0o644)
	cmd := exec.Command(binPath, "serve", "--policy", pol)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	benchPids.Store(cs, cmd)
	return cs
}

// benchPids maps a session of benchServer to its server's command.
var benchPids sync.Map

// cpuTimes are a process's CPU time and that of its reaped children.
type cpuTimes struct{ self, children time.Duration }

// serverCPU reads the CPU times of cs's server from /proc (Linux only;
// zero elsewhere).
func serverCPU(b *testing.B, cs *mcp.ClientSession) cpuTimes {
	v, ok := benchPids.Load(cs)
	if !ok {
		b.Fatal("no server for the session")
	}
	cmd := v.(*exec.Cmd)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return cpuTimes{}
	}
	// Fields after the command name: state is the 3rd field, utime,
	// stime, cutime and cstime the 14th to 17th, in clock ticks.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i-3], 10, 64)
		return time.Duration(n) * time.Second / 100 // USER_HZ
	}
	return cpuTimes{self: tick(14) + tick(15), children: tick(16) + tick(17)}
}
