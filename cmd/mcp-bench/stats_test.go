package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Microsecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one/p50", []time.Duration{7}, 50, 7},
		{"one/p99", []time.Duration{7}, 99, 7},
		{"two/p50", []time.Duration{1, 9}, 50, 1},
		{"two/p51", []time.Duration{1, 9}, 51, 9},
		{"hundred/p50", hundred, 50, 50 * time.Microsecond},
		{"hundred/p90", hundred, 90, 90 * time.Microsecond},
		{"hundred/p99", hundred, 99, 99 * time.Microsecond},
		{"hundred/p100", hundred, 100, 100 * time.Microsecond},
		{"hundred/p0.1", hundred, 0.1, 1 * time.Microsecond},
		{"ten/p90", hundred[:10], 90, 9 * time.Microsecond},
		{"ten/p99", hundred[:10], 99, 10 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one", []float64{3}, 3},
		{"odd/unsorted", []float64{9, 1, 5}, 5},
		{"even/mean-of-middle", []float64{4, 1, 3, 10}, 3.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.xs...)
			if got := median(tt.xs); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.xs[i] {
					t.Fatalf("median modified its input: %v", tt.xs)
				}
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{5, 1, 4, 2, 3}
	got := summarize(lat)
	want := latencySummary{P50: 3, P90: 5, P99: 5, Max: 5, Mean: 3}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if lat[0] != 5 {
		t.Error("summarize sorted its input in place")
	}
}
