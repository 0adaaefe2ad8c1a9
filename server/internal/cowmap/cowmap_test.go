package cowmap

import (
	"sync"
	"testing"
)

func TestMap(t *testing.T) {
	var c Map[int, int]
	made := 0
	mk := func(v int) func() int { return func() int { made++; return v } }
	if got := c.Get(1, mk(10)); got != 10 {
		t.Fatalf("Get(1) = %d", got)
	}
	if got := c.Get(1, mk(99)); got != 10 || made != 1 {
		t.Fatalf("a hit made a value: %d, %d made", got, made)
	}
	for k := 2; k <= Max+10; k++ {
		c.Get(k, mk(k))
	}
	n := 0
	c.Each(func(int) { n++ })
	if n != Max {
		t.Fatalf("%d entries kept, want the bound %d", n, Max)
	}
	before := made
	if got := c.Get(Max+5, mk(Max+5)); got != Max+5 || made != before+1 {
		t.Fatalf("a key past the bound was cached or lost: %d, %d made", got, made-before)
	}

	u := Map[int, int]{Unbounded: true}
	for k := range Max + 10 {
		u.Get(k, func() int { return k })
	}
	n = 0
	u.Each(func(int) { n++ })
	if n != Max+10 {
		t.Fatalf("unbounded map kept %d, want %d", n, Max+10)
	}
}

func TestMapConcurrent(t *testing.T) {
	var c Map[int, *int]
	var wg sync.WaitGroup
	got := make([]*int, 8)
	for i := range got {
		wg.Go(func() { got[i] = c.Get(7, func() *int { v := i; return &v }) })
	}
	wg.Wait()
	for _, p := range got {
		if p != got[0] {
			t.Fatal("concurrent Gets of one key returned different values")
		}
	}
}
