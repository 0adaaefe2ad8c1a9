// Package cowmap is a cache for the hot path: readers load an immutable
// map without a lock or an allocation, and a miss copies the map with
// the new entry under a lock. It suits few keys that are read on every
// call and added rarely (metric attribute sets, per-tool telemetry).
package cowmap

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Max bounds the entries a Map keeps unless it is Unbounded: past it,
// values are made on every miss and not cached, so keys a client can
// choose cannot grow the map without end.
const Max = 1024

// Map caches the values of K; the zero Map is empty and ready.
type Map[K comparable, V any] struct {
	// Unbounded keeps every entry: for keys the server alone chooses
	// from a small set, whose every value must be kept (counters).
	Unbounded bool

	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

// Get returns the value of k, made by mk and cached on a miss.
func (c *Map[K, V]) Get(k K, mk func() V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var m map[K]V
	if old := c.m.Load(); old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		m = *old
	}
	v := mk()
	if c.Unbounded || len(m) < Max {
		m = maps.Clone(m)
		if m == nil {
			m = map[K]V{}
		}
		m[k] = v
		c.m.Store(&m)
	}
	return v
}

// Each calls f with every cached value.
func (c *Map[K, V]) Each(f func(V)) {
	if m := c.m.Load(); m != nil {
		for _, v := range *m {
			f(v)
		}
	}
}
