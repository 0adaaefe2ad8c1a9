package telemetry

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mcp-secure/mcp-secure/server/internal/cowmap"
)

// The meter provider New hands out is the SDK's, except for float64
// histograms: a tools/call records three (decision latency, tool and
// request duration), and the SDK's Record costs a few hundred
// nanoseconds each (it normalises the attribute set every time, through
// reflection). Ours record with atomic adds into a point found by its
// attribute set, and reach the exporter through the periodic reader as
// an sdkmetric.Producer: cumulative explicit-bucket histograms with
// min, max and sum, the SDK's default buckets unless the instrument
// gives its own, and a cardinality limit. Exemplars are not recorded.
// When OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE asks for delta
// histograms, New keeps the SDK's.

// defaultBounds are the SDK's default histogram buckets.
var defaultBounds = []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}

// maxPoints bounds the attribute sets of a histogram, as the SDK's
// cardinality limit does: past it, records go to one point marked
// otel.metric.overflow.
const maxPoints = cowmap.Max

var overflowSet = attribute.NewSet(attribute.Bool("otel.metric.overflow", true))

// meterProvider is the SDK's meter provider with this package's
// histograms.
type meterProvider struct {
	embedded.MeterProvider
	sdk   *sdkmetric.MeterProvider
	hists *histograms
}

var _ metric.MeterProvider = (*meterProvider)(nil)

func (p *meterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	if p.hists == nil {
		return p.sdk.Meter(name, opts...)
	}
	c := metric.NewMeterConfig(opts...)
	return &meter{Meter: p.sdk.Meter(name, opts...), hists: p.hists,
		scope: instrumentation.Scope{Name: name, Version: c.InstrumentationVersion(), SchemaURL: c.SchemaURL(), Attributes: c.InstrumentationAttributes()}}
}

// meter is an SDK meter whose float64 histograms are this package's.
type meter struct {
	metric.Meter
	hists *histograms
	scope instrumentation.Scope
}

func (m *meter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	c := metric.NewFloat64HistogramConfig(opts...)
	bounds := c.ExplicitBucketBoundaries()
	if len(bounds) == 0 {
		bounds = defaultBounds
	}
	if !increasing(bounds) {
		return m.Meter.Float64Histogram(name, opts...) // the SDK reports the error
	}
	h := &histogram{name: name, desc: c.Description(), unit: c.Unit(), bounds: slices.Clone(bounds), scope: m.scope}
	h.overflow = h.newPoint(overflowSet)
	return m.hists.add(h), nil
}

// increasing reports whether bounds are finite and strictly increasing,
// as the SDK requires.
func increasing(bounds []float64) bool {
	for i, b := range bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || i > 0 && bounds[i-1] >= b {
			return false
		}
	}
	return true
}

// histograms are the histograms of a meter provider, produced for its
// reader.
type histograms struct {
	mu   sync.Mutex
	list []*histogram
}

var _ sdkmetric.Producer = (*histograms)(nil)

// add registers h, or returns the histogram registered before with the
// same scope, name, unit, description and buckets: as with the SDK's
// instruments, asking twice gives one stream, not two of one name.
func (hs *histograms) add(h *histogram) *histogram {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, o := range hs.list {
		if strings.EqualFold(o.name, h.name) && o.unit == h.unit && o.desc == h.desc &&
			slices.Equal(o.bounds, h.bounds) && sameScope(o.scope, h.scope) {
			return o
		}
	}
	hs.list = append(hs.list, h)
	return h
}

// Produce reports every histogram, cumulative, one scope entry per
// scope.
func (hs *histograms) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	hs.mu.Lock()
	list := hs.list
	hs.mu.Unlock()
	now := time.Now()
	var out []metricdata.ScopeMetrics
	for _, h := range list {
		m, ok := h.collect(now)
		if !ok {
			continue // no scope entry without a metric
		}
		i := 0
		for i < len(out) && !sameScope(out[i].Scope, h.scope) {
			i++
		}
		if i == len(out) {
			out = append(out, metricdata.ScopeMetrics{Scope: h.scope})
		}
		out[i].Metrics = append(out[i].Metrics, m)
	}
	return out, nil
}

func sameScope(a, b instrumentation.Scope) bool {
	return a.Name == b.Name && a.Version == b.Version && a.SchemaURL == b.SchemaURL && a.Attributes.Equals(&b.Attributes)
}

// histogram is a float64 histogram recorded with atomics.
type histogram struct {
	embedded.Float64Histogram
	name, desc, unit string
	bounds           []float64
	scope            instrumentation.Scope
	// points are the points of attribute sets, at most maxPoints; the
	// records of any other set go to overflow.
	points   cowmap.Map[attribute.Distinct, *point]
	n        atomic.Int64 // points asked for
	overflow *point
}

var _ metric.Float64Histogram = (*histogram)(nil)

// point is the aggregate of one attribute set.
type point struct {
	attrs  attribute.Set
	start  time.Time
	counts []atomic.Uint64 // len(bounds)+1
	sum    atomic.Uint64   // float64 bits
	min    atomic.Uint64   // float64 bits, +Inf before the first record
	max    atomic.Uint64   // float64 bits, -Inf before the first record
}

func (h *histogram) Enabled(context.Context) bool { return true }

// Record adds v to the point of the options' attribute set. A NaN or
// infinite value is dropped, as the SDK drops it. A caller that records
// one attribute set often can keep its point (pointOf) and record to it
// with recordTo, without the options and the look-up.
func (h *histogram) Record(_ context.Context, v float64, opts ...metric.RecordOption) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	c := metric.NewRecordConfig(opts)
	h.record(h.pointOf(c.Attributes()), v)
}

// pointOf is the point of an attribute set: the overflow point past
// maxPoints sets.
func (h *histogram) pointOf(set attribute.Set) *point {
	return h.points.Get(set.Equivalent(), func() *point {
		// Called once for each set the map keeps, then for every
		// record of a set past them, which it does not keep.
		if h.n.Add(1) > maxPoints {
			return h.overflow
		}
		return h.newPoint(set)
	})
}

// record adds v, finite, to p, a point of h.
func (h *histogram) record(p *point, v float64) {
	// The count goes last: collect reads the counts first, so that a
	// record it counts has its sum, min and max in (never the +Inf and
	// -Inf of a point without one).
	addFloat(&p.sum, v)
	for {
		old := p.min.Load()
		if v >= math.Float64frombits(old) || p.min.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	for {
		old := p.max.Load()
		if v <= math.Float64frombits(old) || p.max.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	p.counts[sort.SearchFloat64s(h.bounds, v)].Add(1)
}

// recordTo is Record to a point pointOf gave.
func (h *histogram) recordTo(p *point, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	h.record(p, v)
}

func (h *histogram) newPoint(set attribute.Set) *point {
	p := &point{attrs: set, start: time.Now(), counts: make([]atomic.Uint64, len(h.bounds)+1)}
	p.min.Store(math.Float64bits(math.Inf(1)))
	p.max.Store(math.Float64bits(math.Inf(-1)))
	return p
}

func addFloat(u *atomic.Uint64, v float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// collect is the histogram's data at t; ok is false while nothing was
// recorded.
func (h *histogram) collect(t time.Time) (metricdata.Metrics, bool) {
	data := metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality}
	each := func(p *point) {
		dp := metricdata.HistogramDataPoint[float64]{Attributes: p.attrs, StartTime: p.start, Time: t,
			Bounds: h.bounds, BucketCounts: make([]uint64, len(p.counts))}
		// The counts first (Record adds to them last).
		for i := range p.counts {
			dp.BucketCounts[i] = p.counts[i].Load()
			dp.Count += dp.BucketCounts[i]
		}
		if dp.Count == 0 {
			return
		}
		dp.Sum = math.Float64frombits(p.sum.Load())
		dp.Min = metricdata.NewExtrema(math.Float64frombits(p.min.Load()))
		dp.Max = metricdata.NewExtrema(math.Float64frombits(p.max.Load()))
		data.DataPoints = append(data.DataPoints, dp)
	}
	h.points.Each(each)
	each(h.overflow)
	if len(data.DataPoints) == 0 {
		return metricdata.Metrics{}, false
	}
	return metricdata.Metrics{Name: h.name, Description: h.desc, Unit: h.unit, Data: data}, true
}
