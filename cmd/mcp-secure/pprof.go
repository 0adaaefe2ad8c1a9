package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
)

// profileEnv names the profiles to write, as a comma-separated list of
// KIND:FILE, KIND one of cpu, mem (allocations and heap), block, mutex and
// trace (the runtime execution tracer). For example
//
//	MCP_SECURE_PPROF=cpu:/tmp/cpu.pprof,mem:/tmp/mem.pprof mcp-secure serve
//
// The CPU profile and the trace start before anything else runs; the
// others are written when the server exits.
const profileEnv = "MCP_SECURE_PPROF"

// startProfiles starts the profiles profileEnv asks for and returns the
// function that finishes them. Problems are reported on stderr and never
// stop the server.
func startProfiles(stderr io.Writer) (stop func()) {
	spec := os.Getenv(profileEnv)
	if spec == "" {
		return func() {}
	}
	var stops []func() error
	var atExit []struct{ kind, file string }
	for item := range strings.SplitSeq(spec, ",") {
		kind, file, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || file == "" {
			fmt.Fprintf(stderr, "%s: want KIND:FILE, got %q\n", profileEnv, item)
			continue
		}
		switch kind {
		case "cpu", "trace":
			f, err := os.Create(file)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
				continue
			}
			if kind == "cpu" {
				err = pprof.StartCPUProfile(f)
			} else {
				err = trace.Start(f)
			}
			if err != nil {
				f.Close()
				fmt.Fprintf(stderr, "%s: %s: %v\n", profileEnv, kind, err)
				continue
			}
			stopKind := pprof.StopCPUProfile
			if kind == "trace" {
				stopKind = trace.Stop
			}
			stops = append(stops, func() error { stopKind(); return f.Close() })
		case "mem", "block", "mutex":
			if kind == "block" {
				runtime.SetBlockProfileRate(1)
			}
			if kind == "mutex" {
				runtime.SetMutexProfileFraction(1)
			}
			atExit = append(atExit, struct{ kind, file string }{kind, file})
		default:
			fmt.Fprintf(stderr, "%s: unknown profile %q (want cpu, mem, block, mutex or trace)\n", profileEnv, kind)
		}
	}
	return func() {
		for _, s := range stops {
			if err := s(); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
			}
		}
		for _, p := range atExit {
			name := p.kind
			if name == "mem" {
				name = "allocs"
				runtime.GC()
			}
			if err := writeProfile(name, p.file); err != nil {
				fmt.Fprintf(stderr, "%s: %s: %v\n", profileEnv, p.kind, err)
			}
		}
	}
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
