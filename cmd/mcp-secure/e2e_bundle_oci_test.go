package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcp-secure/mcp-secure/server/bundle/ocitest"
)

// TestE2EBundleOCI takes the policy from a loopback OCI registry: the
// signed bundle under the tag decides calls and names its revision; when
// the tag moves to a tampered bundle, that is refused and audited and the
// good one stays in force.
func TestE2EBundleOCI(t *testing.T) {
	e := newEnv(t, "")
	e.vars = append(e.vars, "MCP_SECURE_BUNDLE_TOKEN=robot:"+bundleToken)
	f := newBundleFixture(t, e.dir) // signs; its HTTP service is not used
	reg := ocitest.New()
	t.Cleanup(reg.Close)
	reg.Authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte("robot:"+bundleToken))
	pol := map[string]any{
		"version": "1.0",
		"audit":   map[string]any{"log_file": e.audit},
		"tools":   map[string]any{"timeout": 10, "rate_limits": map[string]any{"default": 600}},
	}
	const rule = "package mcp.tools\n\ndeny contains \"the fleet policy turns list_categories off\" if input.tool == \"list_categories\"\n"
	push := func(rev string, tamper func(*opabundle.Bundle)) {
		f.publishWith(t, rev, pol, rule, tamper)
		f.mu.Lock()
		reg.Push("fleet/policy", "stable", f.body)
		f.mu.Unlock()
	}
	push("oci-1", nil)
	args := f.args(filepath.Join(e.dir, "bundle-state"))
	args[2] = "oci+http://" + reg.Host() + "/fleet/policy:stable"
	args = append(args, "--bundle-token-scheme", "Basic")
	cs := connectArgs(t, e, args)
	stillDenied(t, e, cs, "oci-1")
	if reg.Unauthorized.Load() != 0 || reg.Blobs.Load() == 0 {
		t.Fatalf("registry: %d unauthorized, %d blobs served", reg.Unauthorized.Load(), reg.Blobs.Load())
	}

	push("oci-2", func(b *opabundle.Bundle) { b.Modules[0].Raw = []byte("package mcp.tools\n") })
	r := e.waitRecords(t, 1, 20*time.Second, bundleRefusal)[0]
	if msg, _ := r["error"].(string); !strings.Contains(msg, "digest mismatch") {
		t.Errorf("refusal error %q, want the digest mismatch", msg)
	}
	stillDenied(t, e, cs, "oci-1")

	push("oci-3", nil)
	for deadline := time.Now().Add(20 * time.Second); e.lastRevision(t) != "oci-3"; {
		if time.Now().After(deadline) {
			t.Fatal("oci-3 not in force within 20 s")
		}
		time.Sleep(200 * time.Millisecond)
		call(t, cs, "list_categories", map[string]any{})
	}
	stillDenied(t, e, cs, "oci-3")
}

// TestE2EBundlePlaintextRefused: a bundle location without TLS to a
// host that is not loopback is refused at start, naming the flag, before
// anything is dialled (start-up does not wait for the service).
func TestE2EBundlePlaintextRefused(t *testing.T) {
	e := newEnv(t, "")
	f := newBundleFixture(t, e.dir)
	for _, loc := range []string{"oci+http://example.invalid/fleet/policy:stable", "http://example.invalid/bundles/fleet.tar.gz"} {
		t.Run(loc, func(t *testing.T) {
			args := f.args(filepath.Join(e.dir, "bundle-state"))
			args[2] = loc
			// Start-up would wait an hour for the service: the refusal
			// must come before any of it.
			args = append(args, "--bundle-start-timeout", "3600s")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a hang guard, not a speed bound
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, args...)
			cmd.Env = append(os.Environ(), "HOME="+e.dir, "MCP_SECURE_BUNDLE_TOKEN="+bundleToken)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("serve --bundle %s waited for the service instead of refusing the location: %s", loc, out)
			}
			code := -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != exitUsage || !strings.Contains(string(out), "--bundle: ") ||
				!strings.Contains(string(out), "example.invalid is not a loopback host") {
				t.Fatalf("serve --bundle %s: exit %d, %s", loc, code, out)
			}
			// Nothing was asked of the service: no download, no state.
			for _, w := range []string{"download", "request failed", "failed to pull", "persisted bundle", "bundle verified"} {
				if strings.Contains(string(out), w) {
					t.Errorf("serve --bundle %s says %q: something was asked of the service:\n%s", loc, w, out)
				}
			}
			if _, err := os.Stat(filepath.Join(e.dir, "bundle-state")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("bundle state directory: %v, want none made", err)
			}
			if strings.Contains(string(out), bundleToken) {
				t.Error("the token is in the output")
			}
		})
	}
}
