package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// bundleFixture is a signing key and a loopback bundle service with ETags
// and a bearer token.
type bundleFixture struct {
	priv    string
	keyFile string
	mu      sync.Mutex
	body    []byte
	etag    string
	ok      atomic.Int64
	notMod  atomic.Int64
	srv     *httptest.Server
}

const bundleToken = "fleet-token-1234"

func newBundleFixture(t *testing.T, dir string) *bundleFixture {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &bundleFixture{
		priv:    string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		keyFile: filepath.Join(dir, "fleet.pem"),
	}
	if err := os.WriteFile(f.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+bundleToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		body, etag := f.body, f.etag
		f.mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			f.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		f.ok.Add(1)
		w.Header().Set("ETag", etag)
		w.Write(body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// publish signs and serves a bundle: policy data and one module.
func (f *bundleFixture) publish(t *testing.T, revision string, policy map[string]any, module string) {
	t.Helper()
	f.publishWith(t, revision, policy, module, nil)
}

// publishWith is publish with tamper, when not nil, changing the bundle
// after it was signed.
func (f *bundleFixture) publishWith(t *testing.T, revision string, policy map[string]any, module string, tamper func(*opabundle.Bundle)) {
	t.Helper()
	b := opabundle.Bundle{
		Manifest: opabundle.Manifest{Revision: revision},
		Data:     map[string]any{"mcp_secure": map[string]any{"policy": policy}},
		Modules:  []opabundle.ModuleFile{{URL: "/rules/fleet.rego", Path: "/rules/fleet.rego", Raw: []byte(module)}},
	}
	b.Manifest.Init()
	if err := b.GenerateSignature(opabundle.NewSigningConfig(f.priv, "RS256", ""), "fleet", false); err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(&b)
	}
	var buf bytes.Buffer
	if err := opabundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.body, f.etag = buf.Bytes(), `"`+revision+`"`
	f.mu.Unlock()
}

func (f *bundleFixture) args(state string) []string {
	return []string{"serve", "--bundle", f.srv.URL + "/bundles/fleet.tar.gz",
		"--bundle-key", f.keyFile, "--bundle-key-id", "fleet",
		"--bundle-token-env", "MCP_SECURE_BUNDLE_TOKEN", "--bundle-state", state,
		"--bundle-min-delay", "1s", "--bundle-max-delay", "1s"}
}

// connectArgs starts the binary with args and connects a Go SDK client.
func connectArgs(t *testing.T, e *env, args []string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"))
	cmd.Env = append(cmd.Env, e.vars...)
	cmd.Stderr = &testWriter{t: t}
	var transport mcp.Transport = &mcp.CommandTransport{Command: cmd}
	if w := transcript(t); w != nil {
		transport = &mcp.LoggingTransport{Transport: transport, Writer: w}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1.2.3"}, nil)
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestE2EBundle starts the server on a signed bundle from a loopback
// bundle service: the bundle's rule denies a call and the audit record
// names the bundle's revision. Restarted with the service gone, it runs on
// the persisted bundle; a wrongly signed bundle with nothing persisted
// stops it at start-up.
func TestE2EBundle(t *testing.T) {
	e := newEnv(t, "")
	e.vars = append(e.vars, "MCP_SECURE_BUNDLE_TOKEN="+bundleToken)
	f := newBundleFixture(t, e.dir)
	pol := map[string]any{
		"version": "1.0",
		"audit":   map[string]any{"log_file": e.audit},
		"tools":   map[string]any{"timeout": 10, "rate_limits": map[string]any{"default": 600}},
	}
	const rule = "package mcp.tools\n\ndeny contains \"the fleet policy turns list_categories off\" if input.tool == \"list_categories\"\n"
	f.publish(t, "fleet-2026.12.02-1", pol, rule)
	state := filepath.Join(e.dir, "bundle-state")

	check := func(t *testing.T, cs *mcp.ClientSession, rev string) {
		t.Helper()
		res := call(t, cs, "list_categories", map[string]any{})
		if !res.IsError || !strings.Contains(text(res), "the fleet policy turns list_categories off") {
			t.Fatalf("bundle rule did not deny: isError=%v %q", res.IsError, text(res))
		}
		if res := call(t, cs, "search_tools", map[string]any{"query": "bugs"}); res.IsError {
			t.Errorf("an innocent call was denied: %s", text(res))
		}
		cs.Close()
		rec := e.findRecord(t, map[string]any{"tool": "list_categories", "result": "deny"})
		labels, _ := rec["labels"].(map[string]any)
		if labels["bundle_revision"] != rev {
			t.Errorf("audit labels %v, want bundle_revision %s", labels, rev)
		}
		ok := e.findRecord(t, map[string]any{"tool": "search_tools", "result": "allow"})
		if l, _ := ok["labels"].(map[string]any); l["bundle_revision"] != rev {
			t.Errorf("allow record labels %v", l)
		}
	}

	t.Run("online", func(t *testing.T) {
		check(t, connectArgs(t, e, f.args(state)), "fleet-2026.12.02-1")
		if f.ok.Load() == 0 {
			t.Fatal("the bundle service was never asked")
		}
	})
	t.Run("a new revision is polled and reloaded", func(t *testing.T) {
		cs := connectArgs(t, e, f.args(state))
		call(t, cs, "list_categories", map[string]any{})
		f.publish(t, "fleet-2026.12.02-2", pol, rule)
		deadline := time.Now().Add(20 * time.Second)
		for {
			call(t, cs, "list_categories", map[string]any{})
			rec := e.findRecord(t, map[string]any{"tool": "list_categories", "result": "deny"})
			if l, _ := rec["labels"].(map[string]any); l["bundle_revision"] == "fleet-2026.12.02-2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("revision 2 not in force within 20 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The reload's record follows the swap: calls decided by the new
		// policy may be written before it.
		e.waitRecords(t, 1, 10*time.Second, func(r map[string]any) bool {
			return r["kind"] == "policy_reload" && r["result"] == "allow"
		})
		if f.notMod.Load() == 0 {
			t.Error("no poll was answered 304 Not Modified")
		}
		check(t, cs, "fleet-2026.12.02-2")
	})
	t.Run("offline restart uses the persisted bundle", func(t *testing.T) {
		args := f.args(state)
		f.srv.Close()
		if err := os.Remove(e.audit); err != nil {
			t.Fatal(err)
		}
		check(t, connectArgs(t, e, append(args, "--bundle-start-timeout", "2s")), "fleet-2026.12.02-2")
	})
	t.Run("wrongly signed, nothing persisted", func(t *testing.T) {
		g := newBundleFixture(t, t.TempDir())
		g.publish(t, "evil", pol, "package mcp.tools\n")
		args := g.args(filepath.Join(t.TempDir(), "state"))
		args[4] = f.keyFile // a key that did not sign it
		code, _, stderr := runBinary(t, e, args...)
		if code != 2 || !strings.Contains(stderr, "no bundle available") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
}

// TestCLIBundleCheck runs policy check on local bundles: a signed .tar.gz
// passes with its revision; a module that widens a decision, or a bundle
// signed for another key id, is refused as it would be in a policy file.
func TestCLIBundleCheck(t *testing.T) {
	e := newEnv(t, "")
	f := newBundleFixture(t, e.dir)
	pol := map[string]any{"version": "1.0", "audit": map[string]any{"log_file": e.audit}}
	tests := map[string]struct {
		module, keyID string
		wantCode      int
		want          string
	}{
		"ok/signed":            {module: "package mcp.tools\n\ndeny contains \"x\" if input.tool == \"x\"\n", keyID: "fleet", want: "bundle revision: local-1"},
		"fail/widening module": {module: "package mcp.tools\n\nallow := true\n", keyID: "fleet", wantCode: 2, want: "rules/fleet.rego:3: rule allow"},
		"fail/another key id":  {module: "package mcp.tools\n", keyID: "other", wantCode: 2, want: `want "other"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f.publish(t, "local-1", pol, tc.module)
			file := filepath.Join(t.TempDir(), "fleet.tar.gz")
			if err := os.WriteFile(file, f.body, 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runBinary(t, e, "policy", "check", "--bundle", file, "--bundle-key", f.keyFile, "--bundle-key-id", tc.keyID)
			if code != tc.wantCode || !strings.Contains(stdout+stderr, tc.want) {
				t.Fatalf("exit %d (want %d), want %q in:\n%s%s", code, tc.wantCode, tc.want, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "is not verified") {
				t.Errorf("a verified bundle is said not to be:\n%s%s", stdout, stderr)
			}
		})
	}
	// A local bundle checked without a key is taken as the file is, and
	// said so.
	f.publish(t, "local-2", pol, "package mcp.tools\n")
	file := filepath.Join(t.TempDir(), "fleet.tar.gz")
	if err := os.WriteFile(file, f.body, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runBinary(t, e, "policy", "check", "--bundle", file)
	if code != 0 || !strings.Contains(stdout+stderr, "bundle "+file+" is not verified (no --bundle-key)") {
		t.Errorf("an unverified local bundle: exit %d\n%s%s", code, stdout, stderr)
	}
}
