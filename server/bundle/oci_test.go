package bundle_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/bundle"
	"github.com/mcp-secure/mcp-secure/server/bundle/ocitest"
)

// TestOCI takes bundles from a loopback OCI registry with OPA's OCI
// downloader: signed bundles are verified, picked up when the tag moves
// and persisted; an unchanged tag downloads nothing; a badly signed one
// is refused and the last good one stays.
func TestOCI(t *testing.T) {
	priv, _, other := keys(t)
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	reg := ocitest.New()
	defer reg.Close()
	reg.Authorization = "Bearer " + base64.StdEncoding.EncodeToString([]byte("s3cret"))
	const repo = "fleet/policy"
	reg.Push(repo, "stable", build(t, spec{revision: "o1", policy: defaultPolicy(), modules: map[string]string{"/rules/deny.rego": denyRule("web_search")}, signKey: priv}))

	state := filepath.Join(t.TempDir(), "state")
	cfg := remoteConfig(t, "", state)
	cfg.Location = "oci+http://" + reg.Host() + "/" + repo + ":stable"
	var mu sync.Mutex
	var refusals []bundle.Refusal
	src, err := bundle.Open(t.Context(), cfg, &bundle.Options{Check: check(t.TempDir()), OnRefuse: func(r bundle.Refusal) {
		mu.Lock()
		refusals = append(refusals, r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop(t.Context())
	if got := src.Current(); got.Revision != "o1" || !strings.Contains(got.Modules["bundle:rules/deny.rego"], "web_search") {
		t.Fatalf("current %q %v, want o1 with its module", got.Revision, got.ModuleNames())
	}
	if reg.Unauthorized.Load() != 0 {
		t.Errorf("%d requests without the token", reg.Unauthorized.Load())
	}
	activate(t, src)
	if _, err := os.Stat(filepath.Join(state, "bundle.tar.gz")); err != nil {
		t.Errorf("not persisted: %v", err)
	}

	// The tag has not moved: no blob is downloaded again.
	blobs := reg.Blobs.Load()
	_ = src.Poll(t.Context())
	if reg.Blobs.Load() != blobs || src.Stats().NotModified.Load() != 1 {
		t.Errorf("unchanged tag: %d more blobs, %d not modified", reg.Blobs.Load()-blobs, src.Stats().NotModified.Load())
	}

	// A badly signed bundle under the tag is refused.
	reg.Push(repo, "stable", build(t, spec{revision: "evil", policy: defaultPolicy(), signKey: other}))
	_ = src.Poll(t.Context())
	mu.Lock()
	n := len(refusals)
	mu.Unlock()
	if got := src.Current().Revision; got != "o1" || n != 1 {
		t.Fatalf("after a badly signed bundle: revision %q, %d refusals; want o1 kept and 1", got, n)
	}

	// The tag moves to a good bundle.
	reg.Push(repo, "stable", build(t, spec{revision: "o2", policy: defaultPolicy(), signKey: priv}))
	_ = src.Poll(t.Context())
	if got := src.Current().Revision; got != "o2" {
		t.Fatalf("revision %q, want o2", got)
	}
	activate(t, src)
	src.Stop(t.Context())
	if left, _ := filepath.Glob(filepath.Join(state, "oci-*")); len(left) != 0 {
		t.Errorf("OCI store left behind: %v", left)
	}

	// The registry is gone: a restart uses the persisted o2.
	reg.Close()
	cfg.StartTimeout = 5 * time.Second
	src2, err := bundle.Open(t.Context(), cfg, &bundle.Options{Check: check(t.TempDir())})
	if err != nil {
		t.Fatalf("offline restart: %v", err)
	}
	defer src2.Stop(t.Context())
	if got := src2.Current().Revision; got != "o2" {
		t.Errorf("offline restart: revision %q, want o2", got)
	}
}

// TestOCIReference checks the reference forms; the registry (loopback,
// nothing listening) is never reached for a malformed one.
func TestOCIReference(t *testing.T) {
	t.Setenv("MCP_SECURE_TEST_BUNDLE_TOKEN", "s3cret")
	tests := map[string]bool{
		"oci://127.0.0.1:1/org/policy:v1":                                true,
		"oci+http://127.0.0.1:1/policy:latest":                           true,
		"oci://127.0.0.1:1/org/policy@sha256:" + strings.Repeat("a", 64): true,
		"oci://127.0.0.1:1/org/policy":                                   false,
		"oci://127.0.0.1:1/org/policy:":                                  false,
		"oci://127.0.0.1:1/org/policy@sha256":                            false,
		"oci://127.0.0.1:1":                                              false,
		"oci://127.0.0.1:1/org/policy:v1?x=1":                            false,
		"oci://user:pw@127.0.0.1:1/org/policy:v1":                        false,
		"oci+http://localhost:1/policy:latest":                           true,
		"oci+http://example.invalid/policy:latest":                       false,
		"oci+http://10.0.0.1:1/policy:latest":                            false,
	}
	for loc, ok := range tests {
		t.Run(loc, func(t *testing.T) {
			cfg := remoteConfig(t, "", t.TempDir())
			cfg.Location = loc
			_, err := bundle.Open(t.Context(), cfg, nil)
			if ok && !errors.Is(err, bundle.ErrNoBundle) || !ok && !errors.Is(err, bundle.ErrConfig) {
				t.Fatalf("err %v, want a %s", err, map[bool]string{true: "failed download", false: "configuration error"}[ok])
			}
		})
	}
}

// TestCheckTransport: a bundle location without TLS is refused unless its
// host is loopback, before anything is dialled or read.
func TestCheckTransport(t *testing.T) {
	for name, c := range map[string]struct {
		loc  string
		want string // "" allows
	}{
		"allow/https":                   {"https://bundles.example.com/b.tar.gz", ""},
		"allow/oci-tls":                 {"oci://registry.example.com/org/policy:v1", ""},
		"allow/local-file":              {"/srv/bundles/b.tar.gz", ""},
		"allow/http-127.0.0.1":          {"http://127.0.0.1:8181/b.tar.gz", ""},
		"allow/http-127.9.9.9":          {"http://127.9.9.9/b.tar.gz", ""},
		"allow/http-localhost":          {"http://LocalHost:8181/b.tar.gz", ""},
		"allow/oci-http-ipv6":           {"oci+http://[::1]:5000/policy:v1", ""},
		"allow/oci-http-mapped":         {"oci+http://[::ffff:127.0.0.1]:5000/policy:v1", ""},
		"deny/http-name":                {"http://bundles.example.com/b.tar.gz", "bundles.example.com is not a loopback host"},
		"deny/oci-http-name":            {"oci+http://example.invalid/fleet/policy:stable", "use oci://"},
		"deny/oci-http-private":         {"oci+http://10.1.2.3:5000/policy:v1", "10.1.2.3 is not a loopback host"},
		"deny/http-any":                 {"http://0.0.0.0:8181/b.tar.gz", "not a loopback host"},
		"deny/http-localhost-lookalike": {"http://localhost.example.com/b.tar.gz", "not a loopback host"},
		"deny/http-ipv6-global":         {"http://[2001:db8::1]/b.tar.gz", "use https://"},
		"deny/http-no-host":             {"http:///b.tar.gz", "bundle URL"},
	} {
		t.Run(name, func(t *testing.T) {
			err := bundle.CheckTransport(c.loc)
			if c.want == "" {
				if err != nil {
					t.Fatalf("CheckTransport(%q) = %v, want nil", c.loc, err)
				}
				return
			}
			if !errors.Is(err, bundle.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckTransport(%q) = %v, want a configuration error saying %q", c.loc, err, c.want)
			}
		})
	}
}
