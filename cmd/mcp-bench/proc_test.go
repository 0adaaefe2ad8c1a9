package main

import (
	"os"
	"testing"
)

func TestParseStatusField(t *testing.T) {
	status := []byte("Name:\tmcp-secure\nVmPeak:\t 1300 kB\nVmHWM:\t   28764 kB\nVmRSS:\t   27000 kB\n")
	tests := []struct {
		field string
		want  int64
		ok    bool
	}{
		{"VmHWM", 28764, true},
		{"VmRSS", 27000, true},
		{"VmSwap", 0, false},
		{"Name", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseStatusField(status, tt.field)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s = %d, %v; want %d, %v", tt.field, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 holds a space and a parenthesis; utime 150 and stime 25 ticks.
	stat := []byte("1234 (my (srv) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 150 25 0 0 20 0 8 0 1000 0 0")
	got, ok := parseStatCPU(stat)
	if !ok || got != 175*clockTick {
		t.Errorf("parseStatCPU = %v, %v; want %v, true", got, ok, 175*clockTick)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x S 1 2 3 4 5 6 7 8 9 10 11 12 13 14"} {
		if _, ok := parseStatCPU([]byte(bad)); ok {
			t.Errorf("parseStatCPU(%q) ok, want failure", bad)
		}
	}
}

func TestProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	if rss, ok := procStatus(os.Getpid(), "VmHWM"); !ok || rss <= 0 {
		t.Errorf("VmHWM of this process = %d, %v", rss, ok)
	}
	if _, ok := procCPU(os.Getpid()); !ok {
		t.Error("procCPU of this process failed")
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("1 (a) S 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0 0"))
	f.Add([]byte(")))"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, ok := parseStatCPU(data); ok && d < 0 {
			t.Fatalf("negative CPU time %v from %q", d, data)
		}
	})
}

func FuzzParseStatusField(f *testing.F) {
	f.Add([]byte("VmHWM:\t 12 kB\n"), "VmHWM")
	f.Fuzz(func(t *testing.T, data []byte, field string) {
		_, _ = parseStatusField(data, field)
	})
}
