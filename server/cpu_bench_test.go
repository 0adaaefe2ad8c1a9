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
