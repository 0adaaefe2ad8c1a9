package ratelimit

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestBurstThenDeny(t *testing.T) {
	clk := newClock()
	l := New(Config{PerMinute: map[string]int{"web_search": 3}, Default: 60}, clk.Now)
	for i := range 3 {
		if ok, _ := l.Allow("web_search"); !ok {
			t.Fatalf("call %d within the burst denied", i)
		}
	}
	ok, retry := l.Allow("web_search")
	if ok {
		t.Fatal("fourth call allowed")
	}
	if retry != 20*time.Second {
		t.Errorf("retryAfter = %v, want 20s (3/min)", retry)
	}
	clk.Advance(19 * time.Second)
	if ok, _ := l.Allow("web_search"); ok {
		t.Fatal("allowed before a token refilled")
	}
	clk.Advance(time.Second)
	if ok, _ := l.Allow("web_search"); !ok {
		t.Fatal("denied after a token refilled")
	}
}

func TestRefillCapsAtCapacity(t *testing.T) {
	clk := newClock()
	l := New(Config{Default: 2}, clk.Now)
	l.Allow("x")
	clk.Advance(time.Hour)
	n := 0
	for {
		if ok, _ := l.Allow("x"); !ok {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("after a long idle %d calls passed, want capacity 2", n)
	}
}

func TestDefaultAndPerTool(t *testing.T) {
	clk := newClock()
	l := New(Config{PerMinute: map[string]int{"default": 99, "a": 1}, Default: 2}, clk.Now)
	if got := (Config{PerMinute: map[string]int{"default": 99}, Default: 2}).Rate("default"); got != 2 {
		t.Errorf("a tool named default uses Default: got %d", got)
	}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal()
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("a: second call allowed with rate 1")
	}
	for i := range 2 {
		if ok, _ := l.Allow("b"); !ok {
			t.Errorf("b call %d denied with default 2", i)
		}
	}
	if ok, _ := l.Allow("b"); ok {
		t.Error("b: third call allowed with default 2")
	}
}

func TestZeroRateDisables(t *testing.T) {
	l := New(Config{PerMinute: map[string]int{"off": 0}, Default: 5}, newClock().Now)
	if ok, retry := l.Allow("off"); ok || retry <= 0 {
		t.Errorf("rate 0: ok=%v retry=%v", ok, retry)
	}
}

func TestConcurrentNeverOverspends(t *testing.T) {
	l := New(Config{Default: 100}, newClock().Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if ok, _ := l.Allow("t"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("allowed %d of 400 with a frozen clock, want exactly 100", allowed)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(Config{Default: 1 << 30}, nil)
	for b.Loop() {
		l.Allow("search_tools")
	}
}
