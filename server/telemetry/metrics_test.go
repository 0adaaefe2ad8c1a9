package telemetry

import (
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// newTestMeterProvider is a meter provider as New makes it, and what its
// reader collects, by metric name.
func newTestMeterProvider(t *testing.T) (*meterProvider, func() map[string]metricdata.Aggregation) {
	t.Helper()
	hists := &histograms{}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(hists))
	mp := &meterProvider{sdk: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), hists: hists}
	return mp, func() map[string]metricdata.Aggregation {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string]metricdata.Aggregation{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if sm.Scope.Name != ScopeName {
					t.Errorf("%s in scope %q", m.Name, sm.Scope.Name)
				}
				out[m.Name] = m.Data
			}
		}
		return out
	}
}

func TestHistogramRecords(t *testing.T) {
	mp, collect := newTestMeterProvider(t)
	m := mp.Meter(ScopeName)
	h, err := m.Float64Histogram("d", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Int64Counter("c")
	if err != nil {
		t.Fatal(err)
	}
	a := metric.WithAttributeSet(attribute.NewSet(attribute.String("k", "a")))
	b := []metric.RecordOption{metric.WithAttributes(attribute.String("k", "b"))}
	for _, v := range []float64{0.5, 1, 5, 20, math.NaN(), math.Inf(1)} {
		h.Record(t.Context(), v, a)
	}
	h.Record(t.Context(), -3, b...)
	c.Add(t.Context(), 2)

	got := collect()
	if s, ok := got["c"].(metricdata.Sum[int64]); !ok || s.DataPoints[0].Value != 2 {
		t.Errorf("the SDK's counter: %+v", got["c"])
	}
	hd, ok := got["d"].(metricdata.Histogram[float64])
	if !ok || hd.Temporality != metricdata.CumulativeTemporality || len(hd.DataPoints) != 2 {
		t.Fatalf("histogram %+v", got["d"])
	}
	type pt struct {
		K              string
		Count          uint64
		Buckets        []uint64
		Sum, Min, Max  float64
		MinSet, MaxSet bool
	}
	var pts []pt
	for _, dp := range hd.DataPoints {
		k, _ := dp.Attributes.Value("k")
		mn, mnok := dp.Min.Value()
		mx, mxok := dp.Max.Value()
		pts = append(pts, pt{k.AsString(), dp.Count, dp.BucketCounts, dp.Sum, mn, mx, mnok, mxok})
		if dp.StartTime.IsZero() || dp.Time.Before(dp.StartTime) || len(dp.Bounds) != 2 {
			t.Errorf("point times %v-%v bounds %v", dp.StartTime, dp.Time, dp.Bounds)
		}
	}
	if pts[0].K != "a" {
		pts[0], pts[1] = pts[1], pts[0]
	}
	want := []pt{
		{"a", 4, []uint64{2, 1, 1}, 26.5, 0.5, 20, true, true}, // NaN and +Inf dropped; 1 is in (-inf, 1]
		{"b", 1, []uint64{1, 0, 0}, -3, -3, -3, true, true},
	}
	if diff := cmp.Diff(want, pts); diff != "" {
		t.Errorf("points (-want +got):\n%s", diff)
	}
}

func TestHistogramOverflows(t *testing.T) {
	mp, collect := newTestMeterProvider(t)
	h, err := mp.Meter(ScopeName).Float64Histogram("d")
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxPoints + 10 {
		h.Record(t.Context(), 1, metric.WithAttributes(attribute.String("k", strconv.Itoa(i))))
	}
	h.Record(t.Context(), 1, metric.WithAttributes(attribute.String("k", "0"))) // a kept set still counts
	hd := collect()["d"].(metricdata.Histogram[float64])
	if len(hd.DataPoints) != maxPoints+1 {
		t.Fatalf("%d points, want %d and the overflow", len(hd.DataPoints), maxPoints)
	}
	var total, overflow uint64
	for _, dp := range hd.DataPoints {
		total += dp.Count
		if v, ok := dp.Attributes.Value("otel.metric.overflow"); ok && v.AsBool() {
			overflow = dp.Count
		}
	}
	if total != maxPoints+11 || overflow != 10 {
		t.Errorf("total %d, overflow %d", total, overflow)
	}
}

// A point collected while its first value is being recorded has either
// no count yet or its min and max: never a count with the empty
// extrema (+Inf, -Inf), which a backend would take as values.
func TestHistogramCollectedDuringAFirstRecord(t *testing.T) {
	for i := range 2000 {
		h := &histogram{name: "d", bounds: defaultBounds}
		h.overflow = h.newPoint(overflowSet)
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.Record(t.Context(), 3)
		}()
		for {
			finished := false
			select {
			case <-done:
				finished = true
			default:
			}
			if m, ok := h.collect(time.Now()); ok {
				dp := m.Data.(metricdata.Histogram[float64]).DataPoints[0]
				lo, _ := dp.Min.Value()
				hi, _ := dp.Max.Value()
				if lo != 3 || hi != 3 || dp.Sum != 3 {
					t.Fatalf("run %d: count %d with min %v, max %v, sum %v", i, dp.Count, lo, hi, dp.Sum)
				}
				break
			}
			if finished {
				t.Fatalf("run %d: nothing collected after the record", i)
			}
		}
	}
}

func TestHistogramsProduceNoEmptyScope(t *testing.T) {
	mp, _ := newTestMeterProvider(t)
	if _, err := mp.Meter(ScopeName).Float64Histogram("d"); err != nil {
		t.Fatal(err)
	}
	sms, err := mp.hists.Produce(t.Context())
	if err != nil || len(sms) != 0 {
		t.Errorf("Produce before any record = %+v, %v; want nothing", sms, err)
	}
}

func TestHistogramAskedForTwiceIsOneStream(t *testing.T) {
	mp, collect := newTestMeterProvider(t)
	bounds := []float64{1, 10}
	h1, err := mp.Meter(ScopeName).Float64Histogram("d", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(bounds...))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := mp.Meter(ScopeName).Float64Histogram("d", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	bounds[0] = 5 // the caller's slice, changed afterwards
	h1.Record(t.Context(), 2)
	h2.Record(t.Context(), 3)
	if n := len(mp.hists.list); n != 1 {
		t.Errorf("%d histograms registered, want one", n)
	}
	hd := collect()["d"].(metricdata.Histogram[float64])
	if len(hd.DataPoints) != 1 {
		t.Fatalf("%d points, want one", len(hd.DataPoints))
	}
	dp := hd.DataPoints[0]
	if dp.Count != 2 || !slices.Equal(dp.Bounds, []float64{1, 10}) || !slices.Equal(dp.BucketCounts, []uint64{0, 2, 0}) {
		t.Errorf("point %+v, want both records in (1, 10]", dp)
	}
}
