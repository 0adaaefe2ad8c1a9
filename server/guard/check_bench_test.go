package guard

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// BenchmarkCheck is the guard's cost on top of a connect: one dial-phase
// decision on the real engine (memoised per snapshot) and its audit
// record, encoded and written to memory.
func BenchmarkCheck(b *testing.B) {
	data := map[string]any{"network": map[string]any{
		"allowed_ranges": []any{"127.0.0.1/32"}, "endpoints": map[string]any{},
		"blocked_ports": []any{22}, "allow_dns": false, "dns_allowlist": []any{},
	}}
	cfg, err := engine.Builtin(data, nil)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, memo := range []bool{true, false} {
		name := "memoised"
		if !memo {
			name = "evaluated"
		}
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			opts := &NetworkOptions{}
			if memo {
				opts.Generation = func() uint64 { return eng.StableGeneration(engine.Network) }
			}
			n := NewNetwork(eng, audit.New(audit.NewWriterSink(&buf), nil), opts)
			ctx := WithCall(context.Background(), Call{Tool: "bench", DecisionID: "d", RequestID: "1"})
			k := netKey{phase: "dial", network: "tcp", addr: netip.MustParseAddr("127.0.0.1"), port: 8080}
			b.ReportAllocs()
			for b.Loop() {
				if err := n.check(ctx, k); err != nil {
					b.Fatal(err)
				}
				buf.Reset()
			}
		})
	}
}
