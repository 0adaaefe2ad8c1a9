package ratelimit

import (
	"sync"
	"time"
)

// Config is the per-tool rates in requests per minute.
type Config struct {
	PerMinute map[string]int // by tool name; the key "default" is ignored here
	Default   int            // for tools without their own rate
}

// Rate returns the per-minute rate of tool.
func (c Config) Rate(tool string) int {
	if r, ok := c.PerMinute[tool]; ok && tool != "default" {
		return r
	}
	return c.Default
}

// Limiter is a set of token buckets, one per tool.
type Limiter struct {
	cfg   Config
	now   func() time.Time
	mu    sync.Mutex
	state map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter; clock nil means time.Now.
func New(cfg Config, clock func() time.Time) *Limiter {
	if clock == nil {
		clock = time.Now
	}
	return &Limiter{cfg: cfg, now: clock, state: map[string]*bucket{}}
}

// Allow takes one token from tool's bucket. When the bucket is empty it
// reports how long until a token is available.
func (l *Limiter) Allow(tool string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	rate := l.cfg.Rate(tool)
	if rate <= 0 {
		return false, time.Minute
	}
	capacity := float64(rate)
	perSecond := capacity / 60
	b, ok := l.state[tool]
	if !ok {
		b = &bucket{tokens: capacity, last: now}
		l.state[tool] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(capacity, b.tokens+elapsed*perSecond)
		b.last = now
	}
	b.tokens = min(b.tokens, capacity) // the rate may have been lowered
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
	return false, wait
}

// SetConfig replaces the rates (a policy reload). Each bucket keeps its
// tokens, capped at its new capacity.
func (l *Limiter) SetConfig(cfg Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
}
