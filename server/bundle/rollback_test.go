package bundle_test

import (
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/bundle"
)

// TestRollback serves bundles out of order to a source with a revision
// order: an older one is refused (ErrRollback, reported), a newer one
// accepted; the floor survives a restart, also when the persisted bundle
// is gone.
func TestRollback(t *testing.T) {
	priv, _, _ := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	type step struct {
		revision string
		iat      int64
		want     string // the revision in force after the poll
		refused  bool
	}
	tests := map[string]struct {
		order string
		first step
		steps []step
		// restart: served at a restart with nothing persisted but the
		// floor; refused means Open fails.
		restart step
	}{
		"natural": {
			order: bundle.OrderNatural,
			first: step{revision: "fleet-9"},
			steps: []step{
				{revision: "fleet-10", want: "fleet-10"},
				{revision: "fleet-9", want: "fleet-10", refused: true},
				{revision: "fleet-10", want: "fleet-10"},
				{revision: "", want: "fleet-10", refused: true},
				{revision: "fleet-11", want: "fleet-11"},
			},
			restart: step{revision: "fleet-10", refused: true},
		},
		"lexical": {
			order: bundle.OrderLexical,
			first: step{revision: "20261202T0700Z"},
			steps: []step{
				{revision: "20261201T2300Z", want: "20261202T0700Z", refused: true},
				{revision: "20261202T0800Z", want: "20261202T0800Z"},
			},
			restart: step{revision: "20261202T0800Z", want: "20261202T0800Z"},
		},
		"iat": {
			order: bundle.OrderIssuedAt,
			first: step{revision: "b", iat: 2000},
			steps: []step{
				{revision: "z", iat: 1999, want: "b", refused: true},
				{revision: "z", want: "b", refused: true}, // no iat
				{revision: "a", iat: 2001, want: "a"},
			},
			restart: step{revision: "c", iat: 2000, refused: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			svc := &service{token: "s3cret"}
			n := 0
			serve := func(s step) {
				n++
				svc.set(build(t, spec{revision: s.revision, iat: s.iat, policy: defaultPolicy(), signKey: priv}), `"`+string(rune('a'+n))+`"`)
			}
			ts := httptest.NewServer(svc)
			defer ts.Close()
			state := filepath.Join(t.TempDir(), "state")
			var mu sync.Mutex
			var refusals []bundle.Refusal
			opts := &bundle.Options{Check: check(t.TempDir()), OnRefuse: func(r bundle.Refusal) {
				mu.Lock()
				refusals = append(refusals, r)
				mu.Unlock()
			}}
			cfg := remoteConfig(t, ts.URL, state)
			cfg.RevisionOrder = tc.order
			serve(tc.first)
			src, err := bundle.Open(t.Context(), cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Stop(t.Context())
			activate(t, src)
			for i, s := range tc.steps {
				serve(s)
				mu.Lock()
				before := len(refusals)
				mu.Unlock()
				_ = src.Poll(t.Context())
				if got := src.Current().Revision; got != s.want {
					t.Fatalf("step %d (%q): revision %q in force, want %q", i, s.revision, got, s.want)
				}
				activate(t, src)
				mu.Lock()
				got := refusals[before:]
				mu.Unlock()
				if s.refused != (len(got) == 1) || s.refused && !errors.Is(got[0].Err, bundle.ErrRollback) {
					t.Fatalf("step %d (%q): refusals %+v, want refused=%v with ErrRollback", i, s.revision, got, s.refused)
				}
			}
			src.Stop(t.Context())

			// Restart without the persisted bundle: the floor file
			// alone keeps an older bundle out.
			if err := os.Remove(filepath.Join(state, "bundle.tar.gz")); err != nil {
				t.Fatal(err)
			}
			serve(tc.restart)
			cfg.StartTimeout = 5 * time.Second
			src2, err := bundle.Open(t.Context(), cfg, opts)
			if tc.restart.refused {
				if !errors.Is(err, bundle.ErrNoBundle) || !errors.Is(err, bundle.ErrRollback) {
					t.Fatalf("restart: err %v, want ErrNoBundle for a rollback", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			defer src2.Stop(t.Context())
			if got := src2.Current().Revision; got != tc.restart.want {
				t.Errorf("restart: revision %q, want %q", got, tc.restart.want)
			}
		})
	}
}

// TestRollbackFloorBehindKeptBundle: a floor file left behind the kept
// bundle (its write failed, or a crash came between the two writes) does
// not let a restart accept the bundles between them: the kept bundle in
// force is the floor.
func TestRollbackFloorBehindKeptBundle(t *testing.T) {
	priv, _, _ := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	svc := &service{token: "s3cret"}
	ts := httptest.NewServer(svc)
	defer ts.Close()
	state := filepath.Join(t.TempDir(), "state")
	opts := &bundle.Options{Check: check(t.TempDir())}
	cfg := remoteConfig(t, ts.URL, state)
	cfg.RevisionOrder = bundle.OrderNatural
	cfg.StartTimeout = 5 * time.Second

	svc.set(build(t, spec{revision: "fleet-1", policy: defaultPolicy(), signKey: priv}), `"a"`)
	src, err := bundle.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	activate(t, src)
	floorFile := filepath.Join(state, "bundle.floor.json")
	stale, err := os.ReadFile(floorFile)
	if err != nil {
		t.Fatal(err)
	}
	svc.set(build(t, spec{revision: "fleet-10", policy: defaultPolicy(), signKey: priv}), `"b"`)
	_ = src.Poll(t.Context())
	if got := src.Current().Revision; got != "fleet-10" {
		t.Fatalf("revision %q in force, want fleet-10", got)
	}
	activate(t, src)
	src.Stop(t.Context())
	if err := os.WriteFile(floorFile, stale, 0o600); err != nil {
		t.Fatal(err)
	}

	// The restart keeps fleet-10 (persisted) and the service now offers
	// the older fleet-9: refused, though the stale floor says fleet-1.
	svc.set(build(t, spec{revision: "fleet-9", policy: defaultPolicy(), signKey: priv}), `"c"`)
	src2, err := bundle.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Stop(t.Context())
	_ = src2.Poll(t.Context())
	if got := src2.Current().Revision; got != "fleet-10" {
		t.Fatalf("after restart: revision %q in force, want fleet-10 (fleet-9 is older than the kept bundle)", got)
	}
}

// TestUnappliedBundleIsNotKept: a bundle that passed the checks but was
// never activated (a reload refused it: it needs a restart) becomes
// neither the kept bundle nor the rollback floor. The service may still
// serve a revision between the one in force and it, and a restart
// without the service comes back on the bundle that ran. The floor only
// rises: activating an older bundle than it is refused.
func TestUnappliedBundleIsNotKept(t *testing.T) {
	priv, _, _ := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	svc := &service{token: "s3cret"}
	ts := httptest.NewServer(svc)
	defer ts.Close()
	state := filepath.Join(t.TempDir(), "state")
	opts := &bundle.Options{Check: check(t.TempDir())}
	cfg := remoteConfig(t, ts.URL, state)
	cfg.RevisionOrder = bundle.OrderNatural
	cfg.StartTimeout = 5 * time.Second
	serve := func(rev, etag string) {
		svc.set(build(t, spec{revision: rev, policy: defaultPolicy(), signKey: priv}), `"`+etag+`"`)
	}

	serve("fleet-1", "a")
	src, err := bundle.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop(t.Context())
	activate(t, src)
	first := src.Current()

	// fleet-3 passes the checks but is not applied (not activated).
	serve("fleet-3", "b")
	_ = src.Poll(t.Context())
	if got := src.Current().Revision; got != "fleet-3" {
		t.Fatalf("revision %q current, want fleet-3", got)
	}
	// fleet-2 is not a rollback from what ran (fleet-1).
	serve("fleet-2", "c")
	_ = src.Poll(t.Context())
	if got := src.Current().Revision; got != "fleet-2" {
		t.Fatalf("revision %q current, want fleet-2 (fleet-3 never ran: it is no floor)", got)
	}
	activate(t, src)
	if err := src.Activated(first); !errors.Is(err, bundle.ErrRollback) {
		t.Errorf("activating fleet-1 after fleet-2: %v, want ErrRollback", err)
	}
	// fleet-4 passes the checks, is not applied, and the server stops.
	serve("fleet-4", "d")
	_ = src.Poll(t.Context())
	if got := src.Current().Revision; got != "fleet-4" {
		t.Fatalf("revision %q current, want fleet-4", got)
	}
	src.Stop(t.Context())

	// A restart without the service: fleet-2, the bundle that ran.
	ts.Close()
	src2, err := bundle.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("offline restart: %v", err)
	}
	defer src2.Stop(t.Context())
	if got := src2.Current(); got.Revision != "fleet-2" || got.ETag != `"c"` {
		t.Errorf("offline restart on revision %q (etag %s), want fleet-2, the last bundle activated", got.Revision, got.ETag)
	}
}

// TestAdmissibleFollowsTheFloor: a bundle that passed its checks while
// the floor was lower (downloaded after a newer one that a reload then
// put in force) is not admissible once the floor has risen past it: a
// reload refuses it instead of running below the floor.
func TestAdmissibleFollowsTheFloor(t *testing.T) {
	priv, _, _ := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	svc := &service{token: "s3cret"}
	ts := httptest.NewServer(svc)
	defer ts.Close()
	cfg := remoteConfig(t, ts.URL, filepath.Join(t.TempDir(), "state"))
	cfg.RevisionOrder = bundle.OrderNatural
	cfg.StartTimeout = 5 * time.Second
	svc.set(build(t, spec{revision: "fleet-5", policy: defaultPolicy(), signKey: priv}), `"a"`)
	src, err := bundle.Open(t.Context(), cfg, &bundle.Options{Check: check(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop(t.Context())
	activate(t, src)
	svc.set(build(t, spec{revision: "fleet-7", policy: defaultPolicy(), signKey: priv}), `"b"`)
	_ = src.Poll(t.Context())
	newer := src.Current()
	svc.set(build(t, spec{revision: "fleet-6", policy: defaultPolicy(), signKey: priv}), `"c"`)
	_ = src.Poll(t.Context())
	older := src.Current()
	if newer.Revision != "fleet-7" || older.Revision != "fleet-6" {
		t.Fatalf("revisions %q then %q, want fleet-7 then fleet-6", newer.Revision, older.Revision)
	}
	if err := src.Admissible(older); err != nil {
		t.Fatalf("fleet-6 over the floor fleet-5: %v", err)
	}
	if err := src.Activated(newer); err != nil {
		t.Fatal(err)
	}
	if err := src.Admissible(older); !errors.Is(err, bundle.ErrRollback) {
		t.Errorf("fleet-6 under the floor fleet-7: %v, want a rollback refusal", err)
	}
	if err := src.Admissible(newer); err != nil {
		t.Errorf("fleet-7 at the floor: %v", err)
	}
}
