//go:build unix

package server

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU adds the process's CPU time per operation (user + system,
// every goroutine, exporters included) to a benchmark's output: on a
// shared machine it tells more than wall time. Call the result after the
// loop.
func reportCPU(b *testing.B) func() {
	b.Helper()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpu()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// reportSwitches reports the process's context switches per operation
// from here to the call of the function it returns: a thread that sleeps
// (voluntary) and is woken again costs system calls and a scheduler's
// round trip, so fewer is less overhead whatever else runs on the
// machine.
func reportSwitches(b *testing.B) func() {
	b.Helper()
	count := func() (vol, invol int64) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return ru.Nvcsw, ru.Nivcsw
	}
	v0, i0 := count()
	return func() {
		if b.N > 0 {
			v, i := count()
			b.ReportMetric(float64(v-v0)/float64(b.N), "vcsw/op")
			b.ReportMetric(float64(i-i0)/float64(b.N), "ivcsw/op")
		}
	}
}
