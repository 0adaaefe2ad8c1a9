package bundle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcp-secure/mcp-secure/server/bundle"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

const keyID = "fleet"

var (
	keyOnce      sync.Once
	privPEM      string
	pubPEM       string
	otherPrivPEM string
)

func keys(t *testing.T) (priv, pub, other string) {
	t.Helper()
	keyOnce.Do(func() {
		gen := func() (string, string) {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
			if err != nil {
				panic(err)
			}
			return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
				string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
		}
		privPEM, pubPEM = gen()
		otherPrivPEM, _ = gen()
	})
	return privPEM, pubPEM, otherPrivPEM
}

// denyRule is a user module that denies one tool.
func denyRule(tool string) string {
	return fmt.Sprintf("package mcp.tools\n\ndeny contains \"bundle rule: %s is off\" if input.tool == %q\n", tool, tool)
}

// widening tries to allow everything: the tighten-only check refuses it.
const widening = "package mcp.tools\n\nallow := true\n"

type spec struct {
	revision string
	policy   map[string]any
	modules  map[string]string
	signKey  string // PEM private key; "" leaves the bundle unsigned
	kid      string // key id the signature names; "" means keyID
	extra    map[string]any
	iat      int64 // when set, the signature's iat claim
}

func defaultPolicy() map[string]any {
	return map[string]any{"version": "1.0", "tools": map[string]any{"timeout": 5}}
}

// build writes the bundle s describes with OPA's bundle writer.
func build(t *testing.T, s spec) []byte {
	t.Helper()
	data := map[string]any{}
	if s.policy != nil {
		data["mcp_secure"] = map[string]any{"policy": s.policy}
	}
	for k, v := range s.extra {
		data[k] = v
	}
	b := opabundle.Bundle{Manifest: opabundle.Manifest{Revision: s.revision}, Data: data}
	for path, src := range s.modules {
		b.Modules = append(b.Modules, opabundle.ModuleFile{URL: path, Path: path, Raw: []byte(src)})
	}
	b.Manifest.Init()
	if s.signKey != "" {
		kid := s.kid
		if kid == "" {
			kid = keyID
		}
		claims := ""
		if s.iat != 0 {
			claims = filepath.Join(t.TempDir(), "claims.json")
			if err := os.WriteFile(claims, fmt.Appendf(nil, `{"iat": %d}`, s.iat), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.GenerateSignature(opabundle.NewSigningConfig(s.signKey, "RS256", claims), kid, false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := opabundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// check loads a snapshot the way the server does: the policy loader, then
// the engine with the built-in and the bundle's modules.
func check(dir string) func(bundle.Snapshot) error {
	return func(s bundle.Snapshot) error {
		pol, err := policy.Parse("bundle "+s.Revision, dir, s.Policy, nil)
		if err != nil {
			return err
		}
		cfg, err := engine.Builtin(pol.Data(), s.Modules)
		if err != nil {
			return err
		}
		_, err = engine.New(context.Background(), cfg)
		return err
	}
}

func keyFile(t *testing.T) string {
	_, pub, _ := keys(t)
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLocal(t *testing.T) {
	priv, _, _ := keys(t)
	tests := map[string]struct {
		spec    spec
		dir     bool // written as a directory (unsigned, no key)
		wantErr string
	}{
		"ok/tarball signed": {spec: spec{revision: "r1", policy: defaultPolicy(), modules: map[string]string{"/rules/deny.rego": denyRule("web_search")}, signKey: priv}},
		"ok/directory":      {spec: spec{revision: "d1", policy: defaultPolicy(), modules: map[string]string{"/rules/deny.rego": denyRule("web_search")}}, dir: true},
		"fail/unsigned tarball with key": {
			spec: spec{revision: "u", policy: defaultPolicy()}, wantErr: "missing .signatures.json"},
		"fail/widening module": {
			spec: spec{revision: "w", policy: defaultPolicy(), modules: map[string]string{"/rules/wide.rego": widening}, signKey: priv}, wantErr: "wide.rego:3: rule allow"},
		"fail/signed for another key id": {
			spec: spec{revision: "o", policy: defaultPolicy(), signKey: priv, kid: "other"}, wantErr: `signed for key id "other"`},
		"fail/no policy document": {
			spec: spec{revision: "n", signKey: priv}, wantErr: "no policy document"},
		"fail/foreign data": {
			spec: spec{revision: "f", policy: defaultPolicy(), extra: map[string]any{"other": 1}, signKey: priv}, wantErr: `data "other" is not used`},
		"fail/bad policy key": {
			spec: spec{revision: "k", policy: map[string]any{"version": "1.0", "netwrok": map[string]any{}}, signKey: priv}, wantErr: "netwrok"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := bundle.Config{Signing: bundle.Signing{KeyID: keyID, KeyFile: keyFile(t)}}
			if tc.dir {
				cfg.Signing = bundle.Signing{}
				cfg.Location = filepath.Join(dir, "b")
				writeDir(t, cfg.Location, tc.spec)
			} else {
				cfg.Location = filepath.Join(dir, "b.tar.gz")
				if err := os.WriteFile(cfg.Location, build(t, tc.spec), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			src, err := bundle.Open(t.Context(), cfg, &bundle.Options{Check: check(dir)})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cur := src.Current()
			if cur.Revision != tc.spec.revision {
				t.Errorf("revision %q, want %q", cur.Revision, tc.spec.revision)
			}
			if got := cur.ModuleNames(); len(got) != 1 || got[0] != "bundle:rules/deny.rego" {
				t.Errorf("modules %v", got)
			}
		})
	}
}

// writeDir lays a bundle out as files, the way `opa build` reads it.
func writeDir(t *testing.T, root string, s spec) {
	t.Helper()
	files := map[string]string{".manifest": fmt.Sprintf(`{"revision":%q}`, s.revision)}
	pol, _ := json.Marshal(s.policy)
	files["mcp_secure/policy/data.json"] = string(pol)
	for p, src := range s.modules {
		files[strings.TrimPrefix(p, "/")] = src
	}
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// service is a loopback bundle server with ETags.
type service struct {
	mu           sync.Mutex
	body         []byte
	etag         string
	status       int // when non-zero, answered instead of the bundle
	ok, notMod   atomic.Int64
	token        string
	unauthorized atomic.Int64
}

func (s *service) set(body []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag, s.status = body, etag, 0
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		s.unauthorized.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	body, etag, status := s.body, s.etag, s.status
	s.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		s.notMod.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.ok.Add(1)
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(body)
}

func remoteConfig(t *testing.T, url, state string) bundle.Config {
	return bundle.Config{
		Location:    url + "/bundles/policy.tar.gz",
		Credentials: bundle.Credentials{BearerTokenEnv: "MCP_SECURE_TEST_BUNDLE_TOKEN"},
		Manual:      true,
		Signing:     bundle.Signing{KeyID: keyID, KeyFile: keyFile(t)},
		StateDir:    state,
	}
}

func TestService(t *testing.T) {
	priv, _, other := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	svc := &service{token: "s3cret"}
	svc.set(build(t, spec{revision: "v1", policy: defaultPolicy(), modules: map[string]string{"/rules/deny.rego": denyRule("web_search")}, signKey: priv}), `"v1"`)
	ts := httptest.NewServer(svc)
	defer ts.Close()
	state := filepath.Join(t.TempDir(), "state")
	var changes atomic.Int64
	var refMu sync.Mutex
	var refusals []bundle.Refusal
	refused := func() []bundle.Refusal {
		refMu.Lock()
		defer refMu.Unlock()
		return append([]bundle.Refusal(nil), refusals...)
	}
	opts := &bundle.Options{
		Check:    check(t.TempDir()),
		OnChange: func(bundle.Snapshot) { changes.Add(1) },
		OnRefuse: func(r bundle.Refusal) {
			refMu.Lock()
			refusals = append(refusals, r)
			refMu.Unlock()
		},
	}
	src, err := bundle.Open(t.Context(), remoteConfig(t, ts.URL, state), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop(t.Context())
	if got := src.Current().Revision; got != "v1" {
		t.Fatalf("revision %q, want v1", got)
	}
	activate(t, src) // the server started with it
	for _, f := range []string{"bundle.tar.gz", "bundle.etag"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v, want 0700", fi.Mode(), err)
	}

	poll := func() { _ = src.Poll(t.Context()) }

	// Unchanged: the ETag is sent and answered with 304.
	poll()
	if svc.notMod.Load() != 1 || svc.ok.Load() != 1 {
		t.Fatalf("second poll: %d 304s, %d 200s; want 1 and 1", svc.notMod.Load(), svc.ok.Load())
	}

	// Every bad bundle is refused and v1 stays in force.
	bad := map[string][]byte{
		"unsigned":        build(t, spec{revision: "bad-unsigned", policy: defaultPolicy()}),
		"wrong key":       build(t, spec{revision: "bad-key", policy: defaultPolicy(), signKey: other}),
		"corrupt":         []byte("\x1f\x8b not a bundle"),
		"other key id":    build(t, spec{revision: "bad-kid", policy: defaultPolicy(), signKey: priv, kid: "other"}),
		"widening module": build(t, spec{revision: "bad-wide", policy: defaultPolicy(), modules: map[string]string{"/rules/wide.rego": widening}, signKey: priv}),
	}
	for _, name := range slices.Sorted(maps.Keys(bad)) { // "wrong key" last
		body := bad[name]
		svc.set(body, `"`+name+`"`)
		failed := src.Stats().Failed.Load()
		poll()
		if src.Stats().Failed.Load() != failed+1 {
			t.Errorf("%s: not counted as failed", name)
		}
		if got := src.Current().Revision; got != "v1" {
			t.Errorf("%s: revision %q, want v1 kept", name, got)
		}
		rs := refused()
		if len(rs) == 0 || rs[len(rs)-1].InForce != "v1" || rs[len(rs)-1].Err == nil {
			t.Fatalf("%s: refusal not reported: %+v", name, rs)
		}
		// OPA's reader hands out no bundle that failed verification:
		// the revision is known only for bundles refused after it.
		if r := rs[len(rs)-1]; name == "widening module" && r.Revision != "bad-wide" || name == "other key id" && r.Revision != "bad-kid" {
			t.Errorf("%s: refused revision %q", name, r.Revision)
		}
	}
	if n := len(refused()); n != len(bad) {
		t.Errorf("%d refusals reported, want %d", n, len(bad))
	}
	// The same refusal again (OPA asks again for a bundle that failed
	// verification) is counted but not reported twice.
	failed := src.Stats().Failed.Load()
	svc.set(bad["unsigned"], `"unsigned"`)
	poll()
	poll()
	if n := len(refused()); n != len(bad)+1 || src.Stats().Failed.Load() != failed+2 {
		t.Errorf("repeated refusal: %d reported (want %d), %d failed (want %d)", n, len(bad)+1, src.Stats().Failed.Load(), failed+2)
	}
	// The service is down: v1 stays, and that is no refusal.
	svc.mu.Lock()
	svc.status = http.StatusInternalServerError
	svc.mu.Unlock()
	poll()
	if got := src.Current().Revision; got != "v1" {
		t.Errorf("service down: revision %q, want v1", got)
	}
	if n := len(refused()); n != len(bad)+1 {
		t.Errorf("service down reported as a refusal (%d)", n)
	}

	// A changed, well-signed bundle is picked up and announced.
	svc.set(build(t, spec{revision: "v2", policy: defaultPolicy(), modules: map[string]string{"/rules/deny.rego": denyRule("add_bug")}, signKey: priv}), `"v2"`)
	poll()
	if got := src.Current().Revision; got != "v2" {
		t.Fatalf("revision %q, want v2", got)
	}
	if !strings.Contains(src.Current().Modules["bundle:rules/deny.rego"], "add_bug") {
		t.Error("v2's module not current")
	}
	if changes.Load() != 1 {
		t.Errorf("OnChange called %d times, want 1 (v2; v1 came with Open)", changes.Load())
	}
	activate(t, src) // a reload applied it
	src.Stop(t.Context())

	// Restart with the service gone: the persisted v2 is used, verified.
	ts.Close()
	src2, err := bundle.Open(t.Context(), remoteConfig(t, ts.URL, state), &bundle.Options{Check: check(t.TempDir())})
	if err != nil {
		t.Fatalf("offline restart: %v", err)
	}
	defer src2.Stop(t.Context())
	if got := src2.Current(); got.Revision != "v2" || got.ETag != `"v2"` {
		t.Errorf("offline restart: revision %q etag %q, want v2", got.Revision, got.ETag)
	}
}

func TestServiceRefusals(t *testing.T) {
	priv, _, _ := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "wrong")
	svc := &service{token: "s3cret"}
	svc.set(build(t, spec{revision: "v1", policy: defaultPolicy(), signKey: priv}), `"v1"`)
	ts := httptest.NewServer(svc)
	defer ts.Close()

	t.Run("fail/wrong token, nothing persisted", func(t *testing.T) {
		_, err := bundle.Open(t.Context(), remoteConfig(t, ts.URL, t.TempDir()), nil)
		if !errors.Is(err, bundle.ErrNoBundle) || svc.unauthorized.Load() == 0 {
			t.Fatalf("err %v (401s: %d), want ErrNoBundle after a 401", err, svc.unauthorized.Load())
		}
	})
	t.Run("fail/no key for a service", func(t *testing.T) {
		cfg := remoteConfig(t, ts.URL, t.TempDir())
		cfg.Signing = bundle.Signing{}
		if _, err := bundle.Open(t.Context(), cfg, nil); !errors.Is(err, bundle.ErrConfig) {
			t.Fatalf("err %v, want ErrConfig", err)
		}
	})
	t.Run("fail/key without id", func(t *testing.T) {
		cfg := remoteConfig(t, ts.URL, t.TempDir())
		cfg.Signing.KeyID = ""
		if _, err := bundle.Open(t.Context(), cfg, nil); !errors.Is(err, bundle.ErrConfig) {
			t.Fatalf("err %v, want ErrConfig", err)
		}
	})
	t.Run("fail/tampered persisted copy", func(t *testing.T) {
		state := t.TempDir()
		if err := os.WriteFile(filepath.Join(state, "bundle.tar.gz"), build(t, spec{revision: "evil", policy: defaultPolicy()}), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := remoteConfig(t, "http://127.0.0.1:1", state)
		cfg.StartTimeout = 5 * time.Second
		if _, err := bundle.Open(t.Context(), cfg, nil); !errors.Is(err, bundle.ErrNoBundle) {
			t.Fatalf("err %v, want ErrNoBundle (unsigned persisted copy refused)", err)
		}
	})
}

func TestPeriodicPolling(t *testing.T) {
	priv, _, _ := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	svc := &service{token: "s3cret"}
	svc.set(build(t, spec{revision: "p1", policy: defaultPolicy(), signKey: priv}), `"p1"`)
	ts := httptest.NewServer(svc)
	defer ts.Close()
	cfg := remoteConfig(t, ts.URL, t.TempDir())
	cfg.Manual = false
	one := int64(1)
	cfg.Polling.MinDelaySeconds, cfg.Polling.MaxDelaySeconds = &one, &one
	changed := make(chan string, 4)
	src, err := bundle.Open(t.Context(), cfg, &bundle.Options{Check: check(t.TempDir()), OnChange: func(s bundle.Snapshot) { changed <- s.Revision }})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop(context.Background())
	if got := src.Current().Revision; got != "p1" {
		t.Fatalf("revision %q, want p1", got)
	}
	svc.set(build(t, spec{revision: "p2", policy: defaultPolicy(), signKey: priv}), `"p2"`)
	select {
	case got := <-changed:
		if got != "p2" {
			t.Fatalf("change %q, want p2", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("p2 not picked up within 15 s")
	}
}

// activate tells src that its current bundle is in force, as the server
// does once it started with it or a reload applied it.
func activate(t *testing.T, src *bundle.Source) {
	t.Helper()
	if err := src.Activated(src.Current()); err != nil {
		t.Fatalf("activating %q: %v", src.Current().Revision, err)
	}
}
