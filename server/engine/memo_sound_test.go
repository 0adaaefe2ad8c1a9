package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

// Built-ins OPA does not mark nondeterministic may still read the clock:
// a certificate chain verified now may be expired in a second. A point
// calling one is not memoised.
func TestMemoPlanTimeDependentBuiltins(t *testing.T) {
	for name, rules := range map[string]string{
		"x509-verify":         `deny contains "bad chain" if not crypto.x509.parse_and_verify_certificates(input.arguments.chain)[0]`,
		"x509-verify-options": `deny contains "bad chain" if not crypto.x509.parse_and_verify_certificates_with_options(input.arguments.chain, {})[0]`,
		"x509-in-helper":      "ok(c) := crypto.x509.parse_and_verify_certificates(c)[0]\n\ndeny contains \"bad chain\" if not ok(input.arguments.chain)",
	} {
		t.Run(name, func(t *testing.T) {
			e := memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true}}, rules)
			if keys := memoKeys(e); keys != nil {
				t.Errorf("memoised on %q; want no memo", keys)
			}
		})
	}
}

// The stale answer the plan guards against: a chain valid at the first
// decision and expired at the second is denied the second time. The
// built-in reads the system clock, which no option moves, so the test
// waits for the chain to expire; a first decision that comes too late to
// see the chain valid (a loaded machine) is tried again with a chain
// that lives longer, and a deny while the chain is still valid fails.
func TestMemoCertificateExpiry(t *testing.T) {
	in := ToolInput{Tool: "a", Registered: true}
	for valid := 2 * time.Second; ; valid *= 2 {
		// Certificates keep whole seconds; Truncate also drops the
		// monotonic reading, so the waits below follow the wall clock
		// that verification reads.
		notAfter := time.Now().Add(valid).Truncate(time.Second)
		chain := shortLivedChain(t, notAfter)
		e := memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true}, "chain": chain},
			`deny contains "bad chain" if not crypto.x509.parse_and_verify_certificates(data.mcp.policy.chain)[0]`)
		d, err := e.DecideTool(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allow {
			if !time.Now().After(notAfter) {
				t.Fatalf("while the chain is valid: %+v; want an allow", d)
			}
			if valid >= 16*time.Second {
				t.Fatalf("every first decision came after its chain expired (the last valid for %v)", valid)
			}
			continue
		}
		for !time.Now().After(notAfter) {
			time.Sleep(time.Until(notAfter) + 10*time.Millisecond)
		}
		if d, err := e.DecideTool(t.Context(), in); err != nil || d.Allow {
			t.Errorf("after the chain expired: %+v, %v; want a deny", d, err)
		}
		return
	}
}

// shortLivedChain is a PEM root and leaf, the leaf valid until notAfter.
func shortLivedChain(t *testing.T, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, root, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}))
}

// The compiler's dependency graph gives a rule's own else branches no
// edge: a decision rule with an else that calls a helper must still have
// the helper looked at, for the memo and for input.session.
func TestPlanFollowsElse(t *testing.T) {
	const tools = `package mcp.tools

default allow := false

allow if input.tool == "never" else := true if data.mcp.lib.helper

decision := {"allow": false, "reasons": ["x"]}
`
	for name, tc := range map[string]struct {
		helper      string
		memo, reads bool
	}{
		"time":    {helper: "helper if time.now_ns() > 0", memo: false, reads: false},
		"session": {helper: "helper if input.session.counts.deny == 0", memo: true, reads: true},
		"with":    {helper: "helper if { h2 with input.tool as \"x\" }\n\nh2 if input.tool == \"x\"", memo: false, reads: false},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := New(t.Context(), Config{Modules: map[string]string{
				"tools.rego": tools,
				"lib.rego":   "package mcp.lib\n\n" + tc.helper + "\n",
			}})
			if err != nil {
				t.Fatal(err)
			}
			s := e.snap.Load()
			if got := s.c.byPoint[Tools].memos[Tools] != nil; got != tc.memo {
				t.Errorf("memoised = %v, want %v", got, tc.memo)
			}
			if tc.memo {
				keys := []string{}
				for _, k := range s.c.byPoint[Tools].memos[Tools].keys {
					keys = append(keys, string(k.Value.(ast.String)))
				}
				if len(keys) != 2 || keys[0] != "session" || keys[1] != "tool" {
					t.Errorf("memo keys %q, want [session tool]", keys)
				}
			}
			if got := e.ReadsSession(t.Context()); got != tc.reads {
				t.Errorf("ReadsSession = %v, want %v", got, tc.reads)
			}
		})
	}
}

// Decisions from many goroutines, past the memo's bound (so it starts
// afresh meanwhile), answer as evaluation does; run with -race.
func TestMemoConcurrent(t *testing.T) {
	rules := `deny contains sprintf("n=%v", [input.arguments.n]) if input.arguments.n % 3 == 0`
	data := map[string]any{"tools": map[string]any{"allow_all": true}}
	memo := memoEngine(t, data, rules)
	plain := memoEngine(t, data, rules)
	plain.snap.Load().noMemo = true
	inputs := make([]ToolInput, memoLimit+100)
	for i := range inputs {
		inputs[i] = ToolInput{Tool: "a", Registered: true,
			Arguments: ast.NewObject(ast.Item(ast.StringTerm("n"), ast.IntNumberTerm(i%(memoLimit+50))))}
	}
	want := make([]Decision, len(inputs))
	for i, in := range inputs {
		var err error
		if want[i], err = plain.DecideTool(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 2 {
				for j := range inputs {
					i := (j*7 + w*131 + r) % len(inputs)
					got, err := memo.DecideTool(t.Context(), inputs[i])
					if err != nil || got.Allow != want[i].Allow || !slices.Equal(got.Reasons, want[i].Reasons) {
						select {
						case errs <- fmt.Sprintf("input %d: %+v, %v; want %+v", i, got, err, want[i]):
						default:
						}
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// Rules reached only through a ref with a variable, or through data as
// a whole, are looked at as the ones named outright are.
func TestMemoPlanDynamicData(t *testing.T) {
	lib := "package mcp.lib\n\nnow := time.now_ns()\n\nsess := input.session\n\nwhole := input\n"
	for name, tc := range map[string]struct {
		rule string
		keys []string // nil: not memoised
	}{
		"named":           {rule: `deny contains "x" if data.mcp.lib.now > 0`},
		"variable":        {rule: `deny contains "x" if { some k; data.mcp.lib[k] == 0 }`},
		"bound-variable":  {rule: `deny contains "x" if { k := "now"; data.mcp.lib[k] > 0 }`},
		"bound-by-input":  {rule: `deny contains "x" if { k := input.tool; data.mcp.lib[k] }`},
		"some-in":         {rule: `deny contains "x" if { some k in ["now", "sess"]; data.mcp.lib[k] }`},
		"package-var":     {rule: `deny contains "x" if { some p; data.mcp[p].now > 0 }`},
		"data-bound":      {rule: `deny contains "x" if { d := data.mcp.lib; d.now > 0 }`},
		"walk":            {rule: `deny contains "x" if { walk(data.mcp.lib, [p, v]); p == ["now"] }`},
		"object-get":      {rule: `deny contains "x" if object.get(data.mcp.lib, "now", 0) > 0`},
		"comprehension":   {rule: `deny contains "x" if count({k | data.mcp.lib[k]}) > 0`},
		"whole-input-lib": {rule: `deny contains "x" if data.mcp.lib.whole.tool == "a"`},
		"unrelated":       {rule: `deny contains "x" if input.tool == "a"`, keys: []string{"registered", "tool", "tool_definition"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Builtin(map[string]any{"tools": map[string]any{"allow_all": true}},
				map[string]string{"u.rego": "package mcp.tools\n\n" + tc.rule + "\n", "lib.rego": lib})
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.keys, memoKeys(e)); diff != "" {
				t.Errorf("memo keys (-want +got):\n%s", diff)
			}
		})
	}
}

// StableGeneration is 0 for a point whose decisions may change with the
// clock, and the generation for one whose decisions are a function of
// their input, memoised by the engine or not.
func TestStableGeneration(t *testing.T) {
	for name, tc := range map[string]struct {
		user   map[string]string
		stable map[Point]bool
	}{
		"builtin": {stable: map[Point]bool{Tools: true, Network: true, Filesystem: true, Commands: true}},
		"network-time": {user: map[string]string{"n.rego": "package mcp.network\n\ndeny contains \"late\" if time.now_ns() > 0\n"},
			stable: map[Point]bool{Tools: true, Network: false, Filesystem: true, Commands: true}},
		"tools-x509": {user: map[string]string{"t.rego": "package mcp.tools\n\ndeny contains \"chain\" if not crypto.x509.parse_and_verify_certificates(input.arguments.c)[0]\n"},
			stable: map[Point]bool{Tools: false, Network: true, Filesystem: true, Commands: true}},
		"tools-variable-member": {user: map[string]string{"t.rego": "package mcp.tools\n\ndeny contains \"x\" if { some k; input[k] == \"x\" }\n"},
			stable: map[Point]bool{Tools: true, Network: true, Filesystem: true, Commands: true}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Builtin(map[string]any{}, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range Points {
				got := e.StableGeneration(p)
				if want := tc.stable[p]; (got != 0) != want || (want && got != e.Generation()) {
					t.Errorf("%s: StableGeneration = %d (generation %d), want stable %v", p, got, e.Generation(), want)
				}
			}
		})
	}
}

// Rules that tell values apart in every way a policy can (their JSON,
// their numbers as written, keys and elements one by one) decide alike,
// memoised or evaluated, over inputs that differ only in such ways.
func TestMemoTellsValuesApart(t *testing.T) {
	rules := []string{
		`deny contains json.marshal(input.arguments) if input.tool == "a"`,
		`deny contains sprintf("%v", [input.arguments.n]) if input.arguments.n`,
		`deny contains k if { some k, v in input.arguments; v == 1 }`,
		`deny contains "all short" if { input.arguments.l; every x in input.arguments.l { count(x) < 2 } }`,
		`deny contains concat(",", object.keys(input.arguments)) if input.tool == "a"`,
		`deny contains x if { x := input.arguments.l[_]; startswith(x, "é") }`,
		`deny contains "nested" if input.arguments.o.p.q == 1`,
		`deny contains input.client.name if input.client.name != ""`,
		`deny contains sprintf("%v", [input.tool_definition]) if input.tool_definition.changed`,
	}
	inputs := []string{
		`{"tool": "a", "registered": true, "arguments": {}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": 1}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": 1.0}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": 1e0}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": "1"}}`,
		`{"tool": "a", "registered": true, "arguments": {"a,b": 1}}`,
		`{"tool": "a", "registered": true, "arguments": {"a": 1, "b": 1}}`,
		`{"tool": "a", "registered": true, "arguments": {"l": ["é", "x"]}}`,
		`{"tool": "a", "registered": true, "arguments": {"l": ["e\u0301", "x"]}}`,
		`{"tool": "a", "registered": true, "arguments": {"l": ["x", "é"]}}`,
		`{"tool": "a", "registered": true, "arguments": {"l": ["xy"]}}`,
		`{"tool": "a", "registered": true, "arguments": {"o": {"p": {"q": 1}}}}`,
		`{"tool": "a", "registered": true, "arguments": {"o": {"p": {"q": 1.0}}}}`,
		`{"tool": "a", "registered": true, "arguments": {"o": {"p": {"q": [1]}}}}`,
		`{"tool": "a", "registered": true, "arguments": {"o": {"p": null}}}`,
		`{"tool": "a", "registered": true, "arguments": {"o": {}}}`,
		`{"tool": "a", "registered": true, "arguments": null}`,
		`{"tool": "a", "registered": true}`,
		`{"tool": "a", "registered": true, "client": {"name": "x\u0000y"}}`,
		`{"tool": "a", "registered": true, "client": {"name": "x"}}`,
		`{"tool": "a", "registered": true, "tool_definition": {"changed": true, "hash": "1"}}`,
		`{"tool": "a", "registered": true, "tool_definition": {"changed": true, "hash": "2"}}`,
	}
	data := map[string]any{"tools": map[string]any{"allow_all": true}}
	for i, rule := range rules {
		memo := memoEngine(t, data, rule)
		if memoOf(memo, Tools) == nil {
			t.Errorf("rule %d: not memoised", i)
			continue
		}
		plain := memoEngine(t, data, rule)
		plain.snap.Load().noMemo = true
		for round := range 2 {
			for _, src := range inputs {
				in := ast.MustParseTerm(src).Value
				want, werr := plain.Decide(t.Context(), Tools, in)
				got, gerr := memo.Decide(t.Context(), Tools, in)
				if diff := cmp.Diff(want, got); diff != "" || (werr == nil) != (gerr == nil) {
					t.Errorf("rule %d, round %d, %s: (-evaluated +memoised):\n%s %v %v", i, round, src, diff, werr, gerr)
				}
			}
		}
	}
}
