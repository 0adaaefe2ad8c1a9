package ratelimit

import "testing"

// A reload lowers a rate: the bucket is capped at its new capacity at
// once; raising it refills at the new rate.
func TestSetConfig(t *testing.T) {
	clk := newClock()
	l := New(Config{Default: 60}, clk.Now)
	if ok, _ := l.Allow("t"); !ok {
		t.Fatal("first call denied")
	}
	l.SetConfig(Config{PerMinute: map[string]int{"t": 2}, Default: 60})
	for i := range 2 {
		if ok, _ := l.Allow("t"); !ok {
			t.Fatalf("call %d within the new capacity denied", i)
		}
	}
	if ok, _ := l.Allow("t"); ok {
		t.Fatal("call past the lowered capacity allowed")
	}
	l.SetConfig(Config{PerMinute: map[string]int{"t": 0}, Default: 60})
	clk.Advance(60e9)
	if ok, _ := l.Allow("t"); ok {
		t.Fatal("a tool whose rate is now 0 was allowed")
	}
}
