package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkUpstreamEcho measures one tools/call of the TypeScript SDK
// server's echo: called directly over its stdio ("direct"), and through
// mcp-secure ("through": validation, rate limit, decision, two audit
// records, then the upstream). The difference of the two is what
// mcp-secure adds to an upstream call. server-cpu-µs/op is the CPU time
// per call of the process the client talks to (Linux only): the
// upstream's own in "direct", mcp-secure's alone in "through" (its
// upstream is not counted), which a busy machine disturbs far less than
// the time per call:
//
//	go test ./cmd/mcp-secure -run '^$' -bench BenchmarkUpstreamEcho -benchtime 2000x -count 5
func BenchmarkUpstreamEcho(b *testing.B) {
	args := map[string]any{"text": "hello"}
	run := func(b *testing.B, cs *mcp.ClientSession, cmd *exec.Cmd, name string) {
		ctx := context.Background()
		for range 20 { // warm up
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		cpu0, ok := procCPU(cmd.Process.Pid)
		for b.Loop() {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
			if err != nil || res.IsError {
				b.Fatalf("call: %v %v", err, res)
			}
		}
		if cpu1, ok1 := procCPU(cmd.Process.Pid); ok && ok1 {
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "server-cpu-µs/op")
		}
	}
	b.Run("direct", func(b *testing.B) {
		u := newUpstreamEnv(b, defaultNetwork, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.Command("node", filepath.Join(u.code, "server.mjs"))
		// The same environment as through mcp-secure: each call is noted
		// in CALL_LOG there, so it is here too.
		cmd.Env = append(os.Environ(), "CALL_LOG="+u.calls)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		run(b, cs, cmd, "echo")
	})
	// A built-in tool through the same server, for scale: the pipeline
	// without the upstream hop.
	b.Run("builtin", func(b *testing.B) {
		u := newUpstreamEnv(b, defaultNetwork, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := u.command()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		args = map[string]any{}
		run(b, cs, cmd, "list_categories")
		args = map[string]any{"text": "hello"}
	})
	b.Run("through", func(b *testing.B) {
		u := newUpstreamEnv(b, defaultNetwork, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := u.command()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		run(b, cs, cmd, "demo__echo")
	})
}

// procCPU is the CPU time (user and system) process pid has used so far,
// read from /proc; ok is false where there is no /proc.
func procCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// After the command name: utime and stime are the 14th and 15th
	// fields of the line, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / 100, true
}
