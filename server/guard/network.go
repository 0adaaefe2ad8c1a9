package guard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/hostname"
)

// Resolver looks names up; *net.Resolver implements it. Tests use their
// own to make a name resolve to any address.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// MaxRedirects caps the redirects an HTTP client from [Network.HTTPClient]
// follows.
const MaxRedirects = 5

// dialTimeout bounds a connection attempt whose context has no deadline.
const dialTimeout = 30 * time.Second

// memoLimit bounds the memoised decisions per snapshot.
const memoLimit = 4096

// Network decides and makes every outbound connection of the plugins.
type Network struct {
	decide   Decider
	audit    Auditor
	resolver Resolver
	log      *slog.Logger
	dry      DryRunner
	// generation reports the policy snapshot in force; memoised decisions
	// of an older snapshot are dropped.
	generation func() uint64

	mu      sync.Mutex
	memoGen uint64
	memo    map[netKey]engine.Decision
}

// NetworkOptions configure a Network guard.
type NetworkOptions struct {
	Resolver Resolver     // nil means net.DefaultResolver
	Logger   *slog.Logger // nil discards
	// Generation is the policy snapshot decisions are kept under; nil,
	// or 0, means they are not kept. It must be 0 while the network
	// rules are not a function of their input (they read the clock):
	// engine.Engine.StableGeneration(engine.Network).
	Generation func() uint64
	// DryRun, when set, also decides each resolve and dial under the
	// dry-run policy, for the record only (never memoised).
	DryRun DryRunner
}

// NewNetwork returns the network guard.
func NewNetwork(d Decider, a Auditor, opts *NetworkOptions) *Network {
	n := &Network{decide: d, audit: a, resolver: net.DefaultResolver, log: slog.New(slog.DiscardHandler)}
	if opts != nil {
		if opts.Resolver != nil {
			n.resolver = opts.Resolver
		}
		if opts.Logger != nil {
			n.log = opts.Logger
		}
		n.generation = opts.Generation
		n.dry = opts.DryRun
	}
	return n
}

type netKey struct {
	phase, host, network, tool string
	addr                       netip.Addr
	port                       uint16
}

// DialContext connects to address ("host:port") if the policy allows it.
// A name is decided before it is resolved, and every address is decided
// again, just before connecting, on the IP and port being connected.
func (n *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, n.refuse(ctx, network+" "+address, map[string]any{"network": network, "address": address}, "only TCP connections are supported")
	}
	hostPart, portPart, err := net.SplitHostPort(address)
	if err != nil {
		return nil, n.refuse(ctx, fmt.Sprintf("%s %q", network, address), map[string]any{"network": network, "address": address}, "not a host:port address")
	}
	p, err := strconv.ParseUint(portPart, 10, 16)
	if err != nil || p == 0 {
		return nil, n.refuse(ctx, fmt.Sprintf("%s %q", network, address), map[string]any{"network": network, "address": address}, fmt.Sprintf("port %q is not a number in 1-65535", portPart))
	}
	port := uint16(p)
	host := NormalizeHost(hostPart)

	var addrs []netip.Addr
	name := ""
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		addrs = []netip.Addr{ip}
	} else {
		name = host
		// A zoned IPv6 literal is neither an address the policy can decide
		// nor a name.
		if err == nil || !hostname.Valid(name) {
			return nil, n.refuse(ctx, fmt.Sprintf("%s %q", network, hostPart), map[string]any{"network": network, "address": address}, "not a valid host name or IP address (zoned IPv6 addresses are never allowed)")
		}
		if err := n.check(ctx, netKey{phase: "resolve", host: name, network: network, port: port}); err != nil {
			return nil, err
		}
		addrs, err = n.resolver.LookupNetIP(ctx, "ip", name)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", name, err)
		}
	}
	var errs []error
	for _, a := range addrs {
		d := &net.Dialer{
			ControlContext: func(ctx context.Context, nw, addr string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					return n.refuse(ctx, addr, map[string]any{"network": nw, "address": addr}, "unparseable address")
				}
				return n.check(ctx, netKey{phase: "dial", host: name, network: nw, addr: ap.Addr(), port: ap.Port()})
			},
		}
		if _, ok := ctx.Deadline(); !ok {
			// A tool call always has a deadline; a bare context gets one.
			d.Timeout = dialTimeout
		}
		conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(a, port).String())
		if err == nil {
			return conn, nil
		}
		var de *DeniedError
		if errors.As(err, &de) {
			errs = append(errs, de)
			continue
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", name)
	}
	// A denial says more than a later connection failure.
	for _, err := range errs {
		var de *DeniedError
		if errors.As(err, &de) {
			return nil, de
		}
	}
	return nil, errs[0]
}

// CheckURL decides, before a tool runs, whether the network policy could
// let it fetch rawURL: an IP literal is decided as a dial, a name as a
// lookup. The connection itself is decided again when it is made.
func (n *Network) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return n.refuse(ctx, fmt.Sprintf("%q", rawURL), map[string]any{"url": rawURL}, "not an absolute URL")
	}
	var port uint16
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		port = 80
	case "https", "wss":
		port = 443
	default:
		return n.refuse(ctx, fmt.Sprintf("%q", rawURL), map[string]any{"url": rawURL}, fmt.Sprintf("URL scheme %q is not allowed", u.Scheme))
	}
	if p := u.Port(); p != "" {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil || v == 0 {
			return n.refuse(ctx, fmt.Sprintf("%q", rawURL), map[string]any{"url": rawURL}, fmt.Sprintf("port %q is not a number in 1-65535", p))
		}
		port = uint16(v)
	}
	if u.Host == "" {
		return n.refuse(ctx, fmt.Sprintf("%q", rawURL), map[string]any{"url": rawURL}, "the URL names no host")
	}
	host := NormalizeHost(u.Hostname())
	ip, err := netip.ParseAddr(host)
	if err == nil && ip.Zone() == "" {
		return n.check(ctx, netKey{phase: "dial", network: "tcp", addr: ip, port: port})
	}
	if err == nil || !hostname.Valid(host) {
		return n.refuse(ctx, fmt.Sprintf("%q", rawURL), map[string]any{"url": rawURL}, "not a valid host name or IP address")
	}
	return n.check(ctx, netKey{phase: "resolve", host: host, network: "tcp", port: port})
}

// check decides one resolve or dial, audits it and returns a
// *DeniedError on deny.
func (n *Network) check(ctx context.Context, k netKey) error {
	call := CallFrom(ctx)
	k.tool = call.Tool
	start := time.Now()
	gen := n.currentGeneration()
	if g, ok := n.decide.(interface{ GenerationFor(context.Context) uint64 }); ok && g.GenerationFor(ctx) != gen {
		gen = 0 // a call pinned to a replaced snapshot: not memoised
	}
	d, cached := n.memoGet(k, gen)
	var evalErr error
	if !cached {
		d, evalErr = n.decide.Decide(ctx, engine.Network, networkInput(k))
		if evalErr == nil {
			n.memoPut(k, d, gen)
		}
	}
	rec := audit.Record{
		DecisionID:       audit.NewID(),
		ParentDecisionID: call.DecisionID,
		SessionID:        call.SessionID,
		RequestID:        call.RequestID,
		Path:             engine.Network.Path(),
		Kind:             audit.KindNetwork,
		Tool:             call.Tool,
		Result:           audit.ResultAllow,
		Reasons:          d.Reasons,
		Input:            networkAudit(k),
		DurationNS:       time.Since(start).Nanoseconds(),
		Revision:         cmp.Or(d.Revision, revisionOf(ctx, n.decide)),
	}
	if n.dry != nil && n.dry.Active() {
		rec.DryRun = dryRun(ctx, n.dry, engine.Network, networkInput(k))
	}
	switch {
	case evalErr != nil:
		rec.Result = audit.ResultError
		n.log.Error("network decision failed; denying", "target", describe(k), "err", evalErr)
	case !d.Allow:
		rec.Result = audit.ResultDeny
	}
	if err := n.audit.Log(ctx, rec); err != nil {
		return &DeniedError{Kind: audit.KindNetwork, Target: describe(k), Reasons: []string{"the audit record could not be written"}}
	}
	if rec.Result != audit.ResultAllow {
		return &DeniedError{Kind: audit.KindNetwork, Target: describe(k), Reasons: d.Reasons}
	}
	return nil
}

// refuse audits a connection refused before the policy could be asked
// (a malformed address, an unsupported network, a zoned IPv6 literal) and
// returns the refusal: no attempt goes unrecorded.
func (n *Network) refuse(ctx context.Context, target string, input map[string]any, reason string) error {
	call := CallFrom(ctx)
	reasons := []string{reason}
	err := n.audit.Log(ctx, audit.Record{
		DecisionID:       audit.NewID(),
		ParentDecisionID: call.DecisionID,
		SessionID:        call.SessionID,
		RequestID:        call.RequestID,
		Path:             engine.Network.Path(),
		Kind:             audit.KindNetwork,
		Tool:             call.Tool,
		Result:           audit.ResultDeny,
		Reasons:          reasons,
		Input:            input,
		Revision:         revisionOf(ctx, n.decide),
	})
	if err != nil {
		reasons = []string{"the audit record could not be written"}
	}
	return &DeniedError{Kind: audit.KindNetwork, Target: target, Reasons: reasons}
}

// currentGeneration is the policy snapshot in force, 0 when decisions are
// not memoised.
func (n *Network) currentGeneration() uint64 {
	if n.generation == nil {
		return 0
	}
	return n.generation()
}

func (n *Network) memoGet(k netKey, gen uint64) (engine.Decision, bool) {
	if gen == 0 {
		return engine.Decision{}, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.memoGen != gen {
		return engine.Decision{}, false
	}
	d, ok := n.memo[k]
	return d, ok
}

// memoPut keeps d under the generation read before it was decided, and
// only while that generation is still in force: a decision that may have
// come from a replaced snapshot is never stored under the new one.
func (n *Network) memoPut(k netKey, d engine.Decision, gen uint64) {
	if gen == 0 || n.currentGeneration() != gen {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.memoGen != gen || n.memo == nil || len(n.memo) >= memoLimit {
		n.memoGen, n.memo = gen, make(map[netKey]engine.Decision)
	}
	n.memo[k] = d
}

func describe(k netKey) string {
	if k.phase == "resolve" {
		return fmt.Sprintf("lookup of %q", k.host)
	}
	s := fmt.Sprintf("%s connection to %s", k.network, netip.AddrPortFrom(k.addr, k.port))
	if k.host != "" {
		s += fmt.Sprintf(" (%s)", k.host)
	}
	return s
}

// networkInput is the input document of data.mcp.network.
func networkInput(k netKey) ast.Value {
	in := engine.NetworkInput{Phase: k.phase, Host: k.host, Port: int(k.port), Network: k.network, Tool: k.tool}
	if k.addr.IsValid() {
		a := k.addr.Unmap()
		in.IP = a.String()
		if e, ok := EmbeddedIPv4(a); ok {
			in.EmbeddedIPv4 = e.String()
		}
	}
	return in.Value()
}

func networkAudit(k netKey) map[string]any {
	m := map[string]any{"phase": k.phase, "host": k.host, "port": int(k.port), "network": k.network}
	if k.addr.IsValid() {
		m["ip"] = k.addr.Unmap().String()
	}
	return m
}

// NormalizeHost lower-cases a host name and drops a trailing dot and IPv6
// brackets, so policy comparisons see one spelling (hostname.Normalize).
func NormalizeHost(h string) string { return hostname.Normalize(h) }

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	nat64l  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	compat4 = netip.MustParsePrefix("::/96")
)

// EmbeddedIPv4 returns the IPv4 address carried inside an IPv6 address
// in the NAT64, 6to4 or IPv4-compatible forms.
func EmbeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a), nat64l.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixTo4.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case compat4.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	}
	return netip.Addr{}, false
}

// HTTPClient returns a client whose every connection goes through
// DialContext: no proxy (the policy must see the real target), no
// connection reuse, at most MaxRedirects redirects, each a new decision at
// dial time.
func (n *Network) HTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:       nil,
		DialContext: n.DialContext,
		// A pooled connection would let a later call, perhaps by another
		// tool, reuse a connection decided for an earlier one.
		DisableKeepAlives:     true,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", MaxRedirects)
			}
			return nil
		},
	}
}
