package guard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// resolver answers from a fixed table; any other name fails.
type resolver map[string][]netip.Addr

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// realGuard builds the network guard on the real engine and built-in Rego,
// from a YAML network section, auditing into a buffer.
func realGuard(t testing.TB, network string, res resolver) (*guard.Network, *bytes.Buffer) {
	t.Helper()
	pol, err := policy.Parse("test.yaml", t.TempDir(), []byte("version: \"1.0\"\n"+network), func(k string) (string, bool) {
		return map[string]string{"HOME": "/h"}[k], k == "HOME"
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.Builtin(pol.Data(), nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	eng.Warm(context.Background())
	var buf bytes.Buffer
	return guard.NewNetwork(eng, audit.New(audit.NewWriterSink(&buf), nil), &guard.NetworkOptions{Resolver: res,
		Generation: func() uint64 { return eng.StableGeneration(engine.Network) }}), &buf
}

// A network rule that reads the clock is decided at each connection: the
// guard keeps no decision of it, as serve wires it.
func TestNetworkDecisionFollowsTheClock(t *testing.T) {
	pol, err := policy.Parse("test.yaml", t.TempDir(), []byte("version: \"1.0\"\nnetwork:\n  allowed_ranges: [\"127.0.0.1/32\"]\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	// The policy reads the engine's clock, which the test moves: before
	// the deadline, past it and back, whatever the machine's load. The
	// deadline is in the past, so a policy that read the system clock
	// would deny from the start.
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(at.Add(-time.Second).UnixNano())
	cfg, err := engine.Builtin(pol.Data(), map[string]string{"n.rego": fmt.Sprintf("package mcp.network\n\ndeny contains \"too late\" if time.now_ns() > %d\n", at.UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock = func() time.Time { return time.Unix(0, now.Load()) }
	eng, err := engine.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := guard.NewNetwork(eng, audit.New(audit.NewWriterSink(io.Discard), nil), &guard.NetworkOptions{
		Generation: func() uint64 { return eng.StableGeneration(engine.Network) }})
	if err := n.CheckURL(t.Context(), "http://127.0.0.1:8080/"); err != nil {
		t.Fatalf("before the time: %v", err)
	}
	now.Store(at.Add(time.Nanosecond).UnixNano())
	var denied *guard.DeniedError
	if err := n.CheckURL(t.Context(), "http://127.0.0.1:8080/"); !errors.As(err, &denied) {
		t.Errorf("after the time: %v, want a denial", err)
	}
	now.Store(at.UnixNano())
	if err := n.CheckURL(t.Context(), "http://127.0.0.1:8080/"); err != nil {
		t.Errorf("with the clock back at the time: %v, want no denial (a kept one)", err)
	}
}

func TestNetworkPolicyEndToEnd(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	network := fmt.Sprintf(`network:
  allowed_ranges: ["127.0.0.1/32"]
  allowed_endpoints:
    - host: Search.Test.
      ports: [%d]
    - host: rebind.test
      ports: [%d]
    - host: private.test
      ports: [%d]
    - host: sixtofour.test
      ports: [%d]
  blocked_ports: [22]
  allow_dns: true
  dns_allowlist: [search.test, rebind.test, private.test, other.test, sixtofour.test]
`, port, port, port, port)
	n, auditLog := realGuard(t, network, resolver{
		"search.test":  {netip.MustParseAddr("127.0.0.1")},
		"rebind.test":  {netip.MustParseAddr("169.254.169.254")},
		"private.test": {netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("::ffff:192.168.1.1")},
		"other.test":   {netip.MustParseAddr("127.0.0.1")},
		// 6to4 is no special range of its own: only the IPv4 address it
		// embeds (the metadata service) makes it one.
		"sixtofour.test": {netip.MustParseAddr("2002:a9fe:a9fe::1")},
	})
	client := n.HTTPClient(0)
	ctx := guard.WithCall(t.Context(), guard.Call{Tool: "web_search", RequestID: "9", DecisionID: "call-1"})
	get := func(url string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for name, tc := range map[string]struct {
		url, reason string
	}{
		"allow/ip-in-ranges":                 {fmt.Sprintf("http://127.0.0.1:%d/", port), ""},
		"allow/ipv4-mapped-in-ranges":        {fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), ""},
		"allow/name-resolving-into-ranges":   {fmt.Sprintf("http://SEARCH.test.:%d/", port), ""},
		"allow/allowlisted-name-in-ranges":   {fmt.Sprintf("http://other.test:%d/", port), ""},
		"deny/blocked-port":                  {"http://127.0.0.1:22/", "port 22 is in network.blocked_ports"},
		"deny/ip-literal-outside-ranges":     {"http://10.9.9.9:80/", "10.9.9.9:80 is not in network.allowed_ranges"},
		"deny/ipv6-loopback-outside-ranges":  {fmt.Sprintf("http://[::1]:%d/", port), "::1"},
		"deny/ipv4-mapped-outside-ranges":    {"http://[::ffff:10.0.0.1]:80/", "10.0.0.1:80 is not in network.allowed_ranges"},
		"deny/nat64-loopback":                {fmt.Sprintf("http://[64:ff9b::7f00:1]:%d/", port), "not in network.allowed_ranges"},
		"deny/6to4-metadata":                 {"http://[2002:a9fe:a9fe::1]:80/", "not in network.allowed_ranges"},
		"deny/name-not-in-dns-allowlist":     {fmt.Sprintf("http://unknown.test:%d/", port), "not in network.dns_allowlist"},
		"deny/endpoint-resolves-to-metadata": {fmt.Sprintf("http://rebind.test:%d/", port), "resolved to 169.254.169.254"},
		"deny/endpoint-resolves-to-private":  {fmt.Sprintf("http://private.test:%d/", port), "resolved to"},
		"deny/endpoint-resolves-to-6to4-metadata": {fmt.Sprintf("http://sixtofour.test:%d/", port),
			`"sixtofour.test" resolved to 2002:a9fe:a9fe::1, a loopback, private, link-local or reserved address`},
		"deny/decimal-spelling-of-loopback":   {fmt.Sprintf("http://2130706433:%d/", port), "not in network.dns_allowlist"},
		"deny/octal-spelling-of-loopback":     {fmt.Sprintf("http://0177.0.0.1:%d/", port), "not in network.dns_allowlist"},
		"deny/hex-spelling-of-loopback":       {fmt.Sprintf("http://0x7f.0.0.1:%d/", port), "not in network.dns_allowlist"},
		"deny/short-spelling-of-loopback":     {fmt.Sprintf("http://127.1:%d/", port), "not in network.dns_allowlist"},
		"deny/zero-address":                   {fmt.Sprintf("http://0.0.0.0:%d/", port), "0.0.0.0"},
		"deny/allowlisted-name-wrong-address": {"http://other.test:22/", "port 22 is in network.blocked_ports"},
	} {
		t.Run(name, func(t *testing.T) {
			err := get(tc.url)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			var de *guard.DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a policy denial", err)
			}
			if !strings.Contains(de.Error(), tc.reason) {
				t.Errorf("denial %q does not say %q", de.Error(), tc.reason)
			}
		})
	}
	// Every decision was audited, linked to the call.
	lines := strings.Split(strings.TrimSpace(auditLog.String()), "\n")
	if len(lines) < 19 {
		t.Errorf("%d audit records for 19 requests", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(l, `"kind":"network"`) || !strings.Contains(l, `"parent_decision_id":"call-1"`) || !strings.Contains(l, `"request_id":"9"`) {
			t.Errorf("audit record %s", l)
		}
	}
}

func TestRedirectToDisallowedAddressWithRealPolicy(t *testing.T) {
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metadata") }))
	defer inner.Close()
	innerPort := inner.Listener.Addr().(*net.TCPAddr).Port
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.1:%d/latest/meta-data", innerPort), http.StatusFound)
	}))
	defer front.Close()
	frontPort := front.Listener.Addr().(*net.TCPAddr).Port
	n, _ := realGuard(t, fmt.Sprintf(`network:
  allowed_ranges: ["127.0.0.1/32"]
  blocked_ports: [%d]
`, innerPort), nil)
	resp, err := n.HTTPClient(0).Get(fmt.Sprintf("http://127.0.0.1:%d/", frontPort))
	if err == nil {
		resp.Body.Close()
		t.Fatal("redirect to a blocked port was followed")
	}
	var de *guard.DeniedError
	if !errors.As(err, &de) || !strings.Contains(de.Error(), fmt.Sprintf("port %d", innerPort)) {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkGuardedDial measures what the guard adds to a loopback dial:
// compare with BenchmarkPlainDial. The decision is memoised per policy
// snapshot; the audit record is written (to memory) on every dial.
func BenchmarkGuardedDial(b *testing.B) {
	ln := acceptAll(b)
	n, buf := realGuard(b, `network:
  allowed_ranges: ["127.0.0.1/32"]
  blocked_ports: [22]
`, nil)
	// A tool call's context, with its deadline.
	ctx, cancel := context.WithTimeout(b.Context(), time.Hour)
	defer cancel()
	ctx = guard.WithCall(ctx, guard.Call{Tool: "bench", DecisionID: "d"})
	b.ReportAllocs()
	for b.Loop() {
		c, err := n.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		buf.Reset()
	}
}

func BenchmarkPlainDial(b *testing.B) {
	ln := acceptAll(b)
	var d net.Dialer
	ctx, cancel := context.WithTimeout(b.Context(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkGuardDecision is the guard's own cost without the connect: a
// dial to a blocked port, decided (memoised) and audited, never connected.
func BenchmarkGuardDecision(b *testing.B) {
	n, buf := realGuard(b, `network:
  allowed_ranges: ["127.0.0.1/32"]
  blocked_ports: [22]
`, nil)
	ctx := guard.WithCall(b.Context(), guard.Call{Tool: "bench", DecisionID: "d"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.DialContext(ctx, "tcp", "127.0.0.1:22"); !errors.Is(err, guard.ErrDenied) {
			b.Fatal(err)
		}
		buf.Reset()
	}
}

func acceptAll(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

func BenchmarkPlainDialWithControl(b *testing.B) {
	ln := acceptAll(b)
	d := net.Dialer{ControlContext: func(context.Context, string, string, syscall.RawConn) error { return nil }}
	b.ReportAllocs()
	for b.Loop() {
		c, err := d.DialContext(b.Context(), "tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
