//go:build unix

package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
)

// BenchmarkStdioLockstep is one request at a time over the stdio
// transport, in process: the embedded default policy on the real engine,
// a file audit log (group commit, hash chain, built-in masks) and the
// session history, as mcp-secure serve wires them. Each request is sent
// in the shape the fast lane takes, and (sdk/...) with an extra member
// that leaves it to the SDK, so the two paths are measured side by side.
func BenchmarkStdioLockstep(b *testing.B) {
	eng := defaultEngine(b)
	sink, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
	if err != nil {
		b.Fatal(err)
	}
	alog := audit.New(sink, &audit.Options{Masker: eng})
	defer alog.Close()
	s, err := New(Options{Engine: eng, Audit: NewHistory(alog, nil), Plugins: []string{"pipeline-test", "fastlane-test"},
		Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)})
	if err != nil {
		b.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	defer func() { cOut.Close(); cancel(); <-done }()
	out := bufio.NewReaderSize(cIn, 1<<16)
	id := 0
	call := func(method, params string) string {
		id++
		line := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q`, id, method)
		if params != "" {
			line += `,"params":` + params
		}
		if _, err := io.WriteString(cOut, line+"}\n"); err != nil {
			b.Fatal(err)
		}
		for {
			got, err := out.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(got, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,`, id)) {
				return got
			}
		}
	}
	call("initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}`)
	if _, err := io.WriteString(cOut, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, method, params, want string
	}{
		{"ping", "ping", ``, `"result":{}`},
		{"call-local", "tools/call", `{"name":"local_echo","arguments":{"x":1}`, `local`},
		{"call-echo", "tools/call", `{"name":"echo","arguments":{"msg":"hi"}`, `"msg":"hi"`},
		{"call-denied", "tools/call", `{"name":"no_such_tool","arguments":{}`, `denied`},
	} {
		for _, path := range []string{"fast", "sdk"} {
			params := bc.params
			switch {
			case path == "sdk" && bc.method == "ping":
				params = `{"_meta":{}}`
			case path == "sdk":
				params += `,"requestState":""}`
			case params != "":
				params += "}"
			}
			b.Run(path+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				stop := reportCPU(b)
				for b.Loop() {
					if got := call(bc.method, params); !strings.Contains(got, bc.want) {
						b.Fatalf("answer %s", got)
					}
				}
				stop()
			})
		}
	}
}

// BenchmarkStdioPipelined keeps 32 calls of a Local tool in flight over
// the stdio transport, in process, wired as BenchmarkStdioLockstep is:
// the fast lane's CPU workers, the audit log's group commit and the
// coalesced answers at work. cpu-ns/op is the process's CPU per call,
// client included.
func BenchmarkStdioPipelined(b *testing.B) {
	const inFlight = 32
	eng := defaultEngine(b)
	sink, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
	if err != nil {
		b.Fatal(err)
	}
	alog := audit.New(sink, &audit.Options{Masker: eng})
	defer alog.Close()
	s, err := New(Options{Engine: eng, Audit: NewHistory(alog, nil), Plugins: []string{"pipeline-test", "fastlane-test"},
		Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)})
	if err != nil {
		b.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	defer func() { cOut.Close(); cancel(); <-done }()
	out := bufio.NewReaderSize(cIn, 1<<16)
	next := func() string {
		got, err := out.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		return got
	}
	if _, err := io.WriteString(cOut, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`+"\n"+
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		b.Fatal(err)
	}
	next()
	b.ReportAllocs()
	stop := reportCPU(b)
	switches := reportSwitches(b)
	start := time.Now()
	tokens := make(chan struct{}, inFlight)
	sent := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(cOut)
		for i := range b.N {
			tokens <- struct{}{}
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"local_echo","arguments":{"x":1}}}`+"\n", i+1)
			if len(tokens) == inFlight || i == b.N-1 {
				if err := w.Flush(); err != nil {
					sent <- err
					return
				}
			}
		}
		sent <- nil
	}()
	for range b.N {
		if got := next(); !strings.Contains(got, "local") {
			b.Fatalf("answer %s", got)
		}
		<-tokens
	}
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	switches()
	stop()
}
