package bundle

import (
	"errors"
	"testing"
)

func TestCompareNatural(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"v2", "v10", -1},
		{"v10", "v2", 1},
		{"v10", "v10", 0},
		{"2026.12.02-9", "2026.12.02-10", -1},
		{"2026.12.02-10", "2026.12.03-1", -1},
		{"v007", "v7", 1}, // same value: the longer run after
		{"v1", "v1a", -1},
		{"a", "b", -1},
		{"release-9", "release-10-rc1", -1},
		{"abc", "ab9", 1},
	}
	for _, tc := range tests {
		if got := compareNatural(tc.a, tc.b); got != tc.want {
			t.Errorf("compareNatural(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestNotOlder(t *testing.T) {
	f := &floor{Revision: "v10", IssuedAt: 1000}
	tests := map[string]struct {
		order string
		floor *floor
		snap  Snapshot
		ok    bool
	}{
		"ok/off":                {order: OrderNone, floor: f, snap: Snapshot{Revision: "v1"}, ok: true},
		"ok/no floor":           {order: OrderNatural, snap: Snapshot{Revision: "v1"}, ok: true},
		"ok/natural newer":      {order: OrderNatural, floor: f, snap: Snapshot{Revision: "v11"}, ok: true},
		"ok/natural same":       {order: OrderNatural, floor: f, snap: Snapshot{Revision: "v10"}, ok: true},
		"fail/natural older":    {order: OrderNatural, floor: f, snap: Snapshot{Revision: "v9"}},
		"fail/no revision":      {order: OrderNatural, floor: f, snap: Snapshot{}},
		"ok/lexical newer":      {order: OrderLexical, floor: f, snap: Snapshot{Revision: "v2"}, ok: true},
		"fail/lexical older":    {order: OrderLexical, floor: f, snap: Snapshot{Revision: "v0"}},
		"ok/iat newer":          {order: OrderIssuedAt, floor: f, snap: Snapshot{Revision: "v1", IssuedAt: 1001}, ok: true},
		"ok/iat same":           {order: OrderIssuedAt, floor: f, snap: Snapshot{IssuedAt: 1000}, ok: true},
		"fail/iat older":        {order: OrderIssuedAt, floor: f, snap: Snapshot{Revision: "v99", IssuedAt: 999}},
		"fail/iat missing":      {order: OrderIssuedAt, floor: f, snap: Snapshot{Revision: "v99"}},
		"fail/iat missing, new": {order: OrderIssuedAt, snap: Snapshot{Revision: "v99"}},
		"fail/no revision, new": {order: OrderLexical, snap: Snapshot{IssuedAt: 5}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := notOlder(tc.order, tc.floor, tc.snap)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrRollback) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
