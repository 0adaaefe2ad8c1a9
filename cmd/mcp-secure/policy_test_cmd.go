package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

type testParams struct {
	policyFile string
	coverage   bool
	threshold  float64
	run        string
	verbose    bool
	format     string
	timeout    time.Duration
	paths      []string
}

func policyTestCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy test", "[PATH...] [--policy FILE] [--coverage] [--threshold N] [--run REGEX] [-v]", `
Runs Rego unit tests with OPA's tester, as opa test does, over the built-in
modules (embedded), the policy's own modules (rego.modules) and the .rego
and data files under each PATH, with the policy's data document at
data.mcp.policy. Without a PATH: the x_test.rego files beside the policy's
modules. A file under PATH that is a copy of a built-in module (a checkout's
rego/ directory) is the built-in one. Exit 0 when every test passes, 1 when
one fails, none ran or coverage is below --threshold, 2 on an error.`, stdout)
	var p testParams
	policyFlag(c, &p.policyFile)
	c.fs.BoolVar(&p.coverage, "coverage", false, "report coverage (per file; --format json: opa's JSON report)")
	c.fs.Float64Var(&p.threshold, "threshold", 0, "fail below this coverage `percent` (implies --coverage)")
	c.fs.StringVar(&p.run, "run", "", "run only the tests matching `regex`")
	c.fs.BoolVar(&p.verbose, "v", false, "print every test and its output")
	c.fs.BoolVar(&p.verbose, "verbose", false, "print every test and its output")
	c.fs.StringVar(&p.format, "format", "pretty", "pretty or json")
	c.fs.DurationVar(&p.timeout, "timeout", 5*time.Second, "per test")
	paths, err := c.parse(args, 0, -1)
	if err != nil {
		return err
	}
	p.paths = paths
	switch {
	case p.threshold < 0 || p.threshold > 100:
		return c.usageErr("--threshold %v: want 0-100", p.threshold)
	case p.format != "pretty" && p.format != "json":
		return c.usageErr("--format %q: want pretty or json", p.format)
	}
	if p.run != "" {
		if _, err := regexp.Compile(p.run); err != nil {
			return c.usageErr("--run: %v", err)
		}
	}
	if p.threshold > 0 {
		p.coverage = true
	}
	return runPolicyTests(ctx, p, stdout)
}

func runPolicyTests(ctx context.Context, p testParams, stdout io.Writer) error {
	// The policy and its modules pass every start-up check first: a user
	// module the server would refuse is not tested as if it ran.
	chk, err := checkPolicy(ctx, p.policyFile)
	if err != nil {
		return err
	}
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	modules := map[string]*ast.Module{}
	bySource := map[string]string{} // source -> module name, to drop copies
	for _, set := range []map[string]string{chk.cfg.Modules, chk.cfg.UserModules} {
		for name, src := range set {
			m, err := ast.ParseModuleWithOpts(name, src, opts)
			if err != nil {
				return &exitErr{code: exitUsage, err: err}
			}
			modules[name], bySource[src] = m, name
		}
	}
	paths := p.paths
	if len(paths) == 0 {
		for _, f := range chk.pol.Rego.Modules {
			t := strings.TrimSuffix(f, ".rego") + "_test.rego"
			if _, err := os.Stat(t); err == nil {
				paths = append(paths, t)
			}
		}
	}
	data := map[string]any{"mcp": map[string]any{"policy": chk.cfg.Data}}
	if len(paths) > 0 {
		res, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithProcessAnnotation(true).
			Filtered(paths, func(_ string, info os.FileInfo, depth int) bool {
				return !info.IsDir() && depth > 0 && strings.HasPrefix(info.Name(), ".")
			})
		if err != nil {
			return &exitErr{code: exitUsage, err: fmt.Errorf("policy test: %w", err)}
		}
		for _, f := range res.Modules {
			if _, dup := bySource[string(f.Raw)]; dup {
				continue
			}
			if abs, err := filepath.Abs(f.Name); err == nil && chk.cfg.UserModules[abs] != "" {
				continue
			}
			modules[f.Name] = f.Parsed
		}
		var ok bool
		if data, ok = mergeDocs(data, res.Documents); !ok {
			return &exitErr{code: exitUsage, err: fmt.Errorf("policy test: the data files under %s conflict with data.mcp.policy", strings.Join(paths, ", "))}
		}
	}
	store := inmem.NewFromObject(data)
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return err
	}
	defer store.Abort(ctx, txn)
	compiler := ast.NewCompiler().
		WithEnablePrintStatements(true).
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithUseTypeCheckAnnotations(true)
	var cov *cover.Cover
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		CapturePrintOutput(true).
		EnableTracing(p.verbose).
		SetModules(modules).
		SetTimeout(p.timeout).
		Filter(p.run)
	if p.coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("policy test: %w", err)}
	}
	var results []*tester.Result
	failed := 0
	for r := range ch {
		// Traces are long; with -v keep the notes and failures, as
		// opa test -v does.
		results = append(results, r)
		if !r.Pass() {
			failed++
		}
	}
	if err := reportTests(stdout, p, results); err != nil {
		return err
	}
	if len(results) == 0 {
		return &exitErr{code: exitError, err: fmt.Errorf("policy test: no tests were run")}
	}
	if failed > 0 {
		return &exitErr{code: exitError, err: fmt.Errorf("policy test: %d of %d tests failed", failed, len(results))}
	}
	if cov != nil {
		report := coverageOf(cov, coveredModules(modules, chk.cfg.Modules))
		if err := reportCoverage(stdout, p, report); err != nil {
			return err
		}
		if report.Coverage < p.threshold {
			return &exitErr{code: exitError, err: fmt.Errorf("policy test: coverage %.2f%% is below the threshold of %.2f%%", report.Coverage, p.threshold)}
		}
	}
	return nil
}

// coverageOf is cov's report on modules alone: the tracer also saw lines
// of the others (tests, built-in rules), which count for nothing here.
func coverageOf(cov *cover.Cover, modules map[string]*ast.Module) cover.Report {
	report := cov.Report(modules)
	report.CoveredLines, report.NotCoveredLines, report.Coverage = 0, 0, 0
	for name, f := range report.Files {
		if _, ok := modules[name]; !ok {
			delete(report.Files, name)
			continue
		}
		report.CoveredLines += f.CoveredLines
		report.NotCoveredLines += f.NotCoveredLines
	}
	if total := report.CoveredLines + report.NotCoveredLines; total > 0 {
		report.Coverage = 100 * float64(report.CoveredLines) / float64(total)
	}
	return report
}

// coveredModules are the modules coverage is reported for: the rules
// under test, not their tests, and not the built-in modules when there
// are rules of the user's own (a threshold is about the user's rules);
// with none, the built-in modules.
func coveredModules(modules map[string]*ast.Module, builtin map[string]string) map[string]*ast.Module {
	own, all := map[string]*ast.Module{}, map[string]*ast.Module{}
	for name, m := range modules {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		all[name] = m
		if _, ok := builtin[name]; !ok {
			own[name] = m
		}
	}
	if len(own) > 0 {
		return own
	}
	return all
}

func reportTests(w io.Writer, p testParams, results []*tester.Result) error {
	ch := make(chan *tester.Result, len(results))
	for _, r := range results {
		ch <- r
	}
	close(ch)
	if p.format == "json" && !p.coverage {
		return tester.JSONReporter{Output: w}.Report(ch)
	}
	if p.format == "json" {
		// The coverage report is the JSON output; failures alone are
		// printed, as opa test --coverage does.
		var failed []*tester.Result
		for r := range ch {
			if !r.Pass() {
				failed = append(failed, r)
			}
		}
		if len(failed) == 0 {
			return nil
		}
		ch = make(chan *tester.Result, len(failed))
		for _, r := range failed {
			ch <- r
		}
		close(ch)
	}
	return tester.PrettyReporter{Output: w, Verbose: p.verbose}.Report(ch)
}

func reportCoverage(w io.Writer, p testParams, report cover.Report) error {
	if p.format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "coverage: %.2f%% (%d of %d lines)\n", report.Coverage, report.CoveredLines, report.CoveredLines+report.NotCoveredLines)
	for _, name := range slices.Sorted(maps.Keys(report.Files)) {
		f := report.Files[name]
		fmt.Fprintf(&b, "  %6.2f%%  %s", f.Coverage, name)
		if len(f.NotCovered) > 0 {
			var lines []string
			for _, r := range f.NotCovered {
				if r.Start.Row == r.End.Row {
					lines = append(lines, fmt.Sprint(r.Start.Row))
				} else {
					lines = append(lines, fmt.Sprintf("%d-%d", r.Start.Row, r.End.Row))
				}
			}
			fmt.Fprintf(&b, "  (not covered: %s)", strings.Join(slices.Compact(lines), ", "))
		}
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// mergeDocs merges the loaded data documents into base; false on a
// conflict (the same leaf given twice).
func mergeDocs(base, add map[string]any) (map[string]any, bool) {
	if len(add) == 0 {
		return base, true
	}
	// The policy document as JSON values, so its maps merge.
	raw, err := json.Marshal(base)
	if err != nil {
		return nil, false
	}
	var plain map[string]any
	if err := json.Unmarshal(raw, &plain); err != nil {
		return nil, false
	}
	return mergeMaps(plain, add)
}

func mergeMaps(a, b map[string]any) (map[string]any, bool) {
	out := maps.Clone(a)
	for k, bv := range b {
		av, ok := out[k]
		if !ok {
			out[k] = bv
			continue
		}
		am, aok := av.(map[string]any)
		bm, bok := bv.(map[string]any)
		if !aok || !bok {
			return nil, false
		}
		m, ok := mergeMaps(am, bm)
		if !ok {
			return nil, false
		}
		out[k] = m
	}
	return out, true
}
