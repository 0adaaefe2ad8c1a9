package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// ruleDecider allows what its function allows and counts evaluations.
type ruleDecider struct {
	mu    sync.Mutex
	n     int
	allow func(in map[string]any) (bool, string)
}

func (d *ruleDecider) Decide(_ context.Context, p engine.Point, in ast.Value) (engine.Decision, error) {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	if p != engine.Network {
		return engine.Decision{Reasons: []string{"wrong point"}}, nil
	}
	v, err := ast.JSON(in)
	if err != nil {
		return engine.Decision{}, err
	}
	ok, why := d.allow(v.(map[string]any))
	if ok {
		return engine.Decision{Allow: true}, nil
	}
	return engine.Decision{Reasons: []string{why}}, nil
}

type recAuditor struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (a *recAuditor) Log(_ context.Context, r audit.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
	return nil
}

type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// loopbackOnly allows dials to 127.0.0.1 on the given port, and lookups of
// names in names.
func loopbackOnly(port int, names ...string) func(map[string]any) (bool, string) {
	return func(in map[string]any) (bool, string) {
		if in["phase"] == "resolve" {
			for _, n := range names {
				if in["host"] == n {
					return true, ""
				}
			}
			return false, fmt.Sprintf("name %v is not in network.dns_allowlist", in["host"])
		}
		if in["ip"] == "127.0.0.1" && fmt.Sprint(in["port"]) == fmt.Sprint(port) {
			return true, ""
		}
		return false, fmt.Sprintf("%v:%v is not allowed", in["ip"], in["port"])
	}
}

func portOf(t *testing.T, u string) int {
	t.Helper()
	ap := netip.MustParseAddrPort(strings.TrimPrefix(u, "http://"))
	return int(ap.Port())
}

func TestDialDecidesResolvedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }))
	defer srv.Close()
	port := portOf(t, srv.URL)
	dec := &ruleDecider{allow: loopbackOnly(port, "good.test", "evil.test")}
	aud := &recAuditor{}
	n := NewNetwork(dec, aud, &NetworkOptions{Resolver: mapResolver{
		"good.test": {netip.MustParseAddr("127.0.0.1")},
		// DNS that answers with a metadata address is refused at dial time.
		"evil.test": {netip.MustParseAddr("169.254.169.254")},
	}})
	ctx := WithCall(t.Context(), Call{Tool: "web_search", RequestID: "3", DecisionID: "parent"})
	client := n.HTTPClient(0)

	get := func(url string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(fmt.Sprintf("http://good.test:%d/", port)); err != nil {
		t.Fatalf("allowed name: %v", err)
	}
	for name, url := range map[string]string{
		"deny/name-not-allowlisted": fmt.Sprintf("http://other.test:%d/", port),
		"deny/resolves-to-metadata": fmt.Sprintf("http://evil.test:%d/", port),
		"deny/other-port":           "http://127.0.0.1:1/",
		"deny/decimal-ip-spelling":  fmt.Sprintf("http://2130706433:%d/", port),
		"deny/octal-ip-spelling":    fmt.Sprintf("http://0177.0.0.1:%d/", port),
		"deny/hex-ip-spelling":      fmt.Sprintf("http://0x7f.0.0.1:%d/", port),
		"deny/ipv4-mapped-other":    "http://[::ffff:10.0.0.1]:80/",
	} {
		t.Run(name, func(t *testing.T) {
			err := get(url)
			var de *DeniedError
			if !errors.As(err, &de) || !errors.Is(err, ErrDenied) {
				t.Fatalf("err = %v, want a DeniedError", err)
			}
			if len(de.Reasons) == 0 || de.Target == "" {
				t.Errorf("denial lacks detail: %+v", de)
			}
		})
	}
	// Every decision was audited with its parent.
	for _, r := range aud.recs {
		if r.Kind != audit.KindNetwork || r.ParentDecisionID != "parent" || r.Tool != "web_search" || r.RequestID != "3" || r.Path != "mcp/network/decision" {
			t.Errorf("record = %+v", r)
		}
	}
	if len(aud.recs) < 8 {
		t.Errorf("%d audit records, want one per decision", len(aud.recs))
	}
}

func TestRedirectDecidedAgain(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "secret") }))
	defer target.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/internal", http.StatusFound)
	}))
	defer front.Close()
	dec := &ruleDecider{allow: loopbackOnly(portOf(t, front.URL))}
	aud := &recAuditor{}
	n := NewNetwork(dec, aud, nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, front.URL, nil)
	_, err := n.HTTPClient(0).Do(req)
	var de *DeniedError
	if !errors.As(err, &de) || !strings.Contains(de.Target, fmt.Sprint(portOf(t, target.URL))) {
		t.Fatalf("redirect followed or wrong denial: %v", err)
	}
	last := aud.recs[len(aud.recs)-1]
	if last.Result != audit.ResultDeny {
		t.Errorf("last record = %+v", last)
	}
}

func TestRedirectCap(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.Path+"x", http.StatusFound)
	}))
	defer srv.Close()
	n := NewNetwork(&ruleDecider{allow: loopbackOnly(portOf(t, srv.URL))}, &recAuditor{}, nil)
	_, err := n.HTTPClient(0).Get(srv.URL + "/")
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Fatalf("err = %v", err)
	}
}

func TestMemoisedPerGeneration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dec := &ruleDecider{allow: loopbackOnly(port)}
	var gen uint64 = 1
	n := NewNetwork(dec, &recAuditor{}, &NetworkOptions{Generation: func() uint64 { return gen }})
	for range 5 {
		c, err := n.DialContext(t.Context(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if dec.n != 1 {
		t.Errorf("%d evaluations for 5 identical dials, want 1", dec.n)
	}
	gen = 2
	c, err := n.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if dec.n != 2 {
		t.Errorf("a new snapshot did not re-evaluate: %d", dec.n)
	}
}

func TestEmbeddedIPv4(t *testing.T) {
	for in, want := range map[string]string{
		"64:ff9b::a00:1":    "10.0.0.1",
		"2002:a9fe:a9fe::1": "169.254.169.254",
		"::7f00:1":          "127.0.0.1",
		"::1":               "",
		"2001:db8::1":       "",
		"::ffff:127.0.0.1":  "",
	} {
		got, ok := EmbeddedIPv4(netip.MustParseAddr(in))
		if (want == "") == ok || (ok && got.String() != want) {
			t.Errorf("EmbeddedIPv4(%s) = %v %v, want %q", in, got, ok, want)
		}
	}
}

func FuzzNetworkInput(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:443", "example.com:443", "0x7f.1:80", "[::ffff:10.0.0.1]:22", "a..b:1", ":0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, address string) {
		dec := &ruleDecider{allow: func(in map[string]any) (bool, string) {
			// The decision always sees a normalised host and a canonical IP.
			if h, _ := in["host"].(string); h != strings.ToLower(h) || strings.HasSuffix(h, ".") {
				t.Fatalf("host not normalised: %q", h)
			}
			if ip, _ := in["ip"].(string); ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil || a.Is4In6() || a.String() != ip {
					t.Fatalf("ip not canonical: %q", ip)
				}
			}
			return false, "fuzz denies all"
		}}
		n := NewNetwork(dec, &recAuditor{}, &NetworkOptions{Resolver: mapResolver{}})
		c, err := n.DialContext(context.Background(), "tcp", address)
		if err == nil {
			c.Close()
			t.Fatalf("dial to %q succeeded with a deny-all policy", address)
		}
	})
}
