package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // a run failed
	exitUsage = 2
)

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcp-bench: %v\n", err)
		return exitUsage
	}
	rep, err := benchmark(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mcp-bench: %v\n", err)
		return exitFail
	}
	switch {
	case cfg.JSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case cfg.Markdown:
		err = rep.writeMarkdown(stdout, cfg.Title)
	default:
		err = rep.writeText(stdout)
	}
	if err == nil && cfg.Summary != "" {
		err = appendSummary(cfg.Summary, rep.summaryRow(cfg.Title))
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcp-bench: %v\n", err)
		return exitFail
	}
	return exitOK
}

// summaryHeader heads the table that --summary rows go into; it is
// written when the file is empty.
const summaryHeader = "| scenario | A p50 | A p90 | B p50 | B p90 | p50 A/B | A req/s | B req/s | A spawn → first answer | B spawn → first answer | A errors |\n" +
	"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"

// summaryRow is the report in one row under summaryHeader.
func (rep *report) summaryRow(title string) string {
	if title == "" {
		title = rep.Workload.Text
	}
	a := rep.Servers[0]
	b := &serverReport{Median: map[string]float64{}}
	ratio := "-"
	if len(rep.Servers) > 1 {
		b = rep.Servers[1]
		if r, ok := rep.Ratios["p50_us"]; ok {
			ratio = fmt.Sprintf("%.1f×", r)
		}
	}
	val := func(s *serverReport, name, unit string) string {
		if len(s.Runs) == 0 {
			return "-"
		}
		return formatValue(s.Median[name], unit)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", title,
		val(a, "p50_us", "µs"), val(a, "p90_us", "µs"), val(b, "p50_us", "µs"), val(b, "p90_us", "µs"), ratio,
		val(a, "throughput_per_s", "req/s"), val(b, "throughput_per_s", "req/s"),
		val(a, "spawn_to_first_answer_ms", "ms"), val(b, "spawn_to_first_answer_ms", "ms"), formatErrors(a.Errors))
}

func appendSummary(file, row string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		row = summaryHeader + row
	}
	if _, err := f.WriteString(row); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// report is everything one invocation measured.
type report struct {
	Workload workload           `json:"workload"`
	Servers  []*serverReport    `json:"servers"`
	Ratios   map[string]float64 `json:"ratios,omitempty"` // first server / second
}

type workload struct {
	Text        string          `json:"text"`
	Method      string          `json:"method"`
	Tool        string          `json:"tool,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	Calls       int             `json:"calls"`
	Concurrency int             `json:"concurrency"`
	Pause       string          `json:"pause,omitempty"`
	DurationMax string          `json:"duration_max"`
	Warmup      int             `json:"warmup"`
	Protocol    string          `json:"protocol"`
	Runs        int             `json:"runs"`
}

type serverReport struct {
	Label   string             `json:"label"`
	Command []string           `json:"command"`
	Runs    []*runResult       `json:"runs"`
	Median  map[string]float64 `json:"median"`
	Errors  map[string]int     `json:"errors_all_runs,omitempty"`
	Samples map[string]string  `json:"error_samples,omitempty"`
}

// metric is one figure reported as the median over runs.
type metric struct {
	Name  string
	Label string
	Unit  string
	Of    func(*runResult) float64
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func us(d time.Duration) float64 { return float64(d) / 1e3 }

var metrics = []metric{
	{"spawn_to_handshake_ms", "spawn → handshake answer", "ms", func(r *runResult) float64 { return ms(r.SpawnToHandshake) }},
	{"spawn_to_first_answer_ms", "spawn → first answer", "ms", func(r *runResult) float64 { return ms(r.SpawnToFirstAnswer) }},
	{"p50_us", "p50", "µs", func(r *runResult) float64 { return us(r.Latency.P50) }},
	{"p90_us", "p90", "µs", func(r *runResult) float64 { return us(r.Latency.P90) }},
	{"p99_us", "p99", "µs", func(r *runResult) float64 { return us(r.Latency.P99) }},
	{"max_us", "max", "µs", func(r *runResult) float64 { return us(r.Latency.Max) }},
	{"mean_us", "mean", "µs", func(r *runResult) float64 { return us(r.Latency.Mean) }},
	{"elapsed_ms", "measured phase", "ms", func(r *runResult) float64 { return ms(r.Elapsed) }},
	{"throughput_per_s", "throughput", "req/s", func(r *runResult) float64 { return r.Throughput }},
	{"peak_rss_mib", "peak RSS", "MiB", func(r *runResult) float64 { return float64(r.PeakRSSKiB) / 1024 }},
	{"rss_growth_mib", "RSS growth after warmup", "MiB", func(r *runResult) float64 {
		return float64(r.RSSEndKiB-r.RSSAfterWarmupKiB) / 1024
	}},
	{"cpu_total_ms", "server CPU, whole life", "ms", func(r *runResult) float64 { return ms(r.CPUUser + r.CPUSys) }},
	{"cpu_per_call_us", "server CPU per call (10 ms ticks)", "µs", func(r *runResult) float64 {
		if r.Answered == 0 {
			return 0
		}
		return us(r.CPUMeasured) / float64(r.Answered)
	}},
}

// benchmark runs every run against every server, interleaved.
func benchmark(cfg *config, stderr io.Writer) (*report, error) {
	rep := &report{Workload: workload{
		Text:   cfg.describe(),
		Method: cfg.Method, Tool: cfg.Tool, Params: cfg.Params,
		Calls: cfg.Calls, Concurrency: cfg.Concurrency, DurationMax: cfg.Duration.String(),
		Warmup: cfg.Warmup, Protocol: cfg.Protocol, Runs: cfg.Runs,
	}}
	if cfg.Pause > 0 {
		rep.Workload.Pause = cfg.Pause.String()
	}
	rep.Servers = append(rep.Servers, &serverReport{Label: "A", Command: cfg.Server})
	if cfg.Compare != nil {
		rep.Servers = append(rep.Servers, &serverReport{Label: "B", Command: cfg.Compare})
	}
	for i := range cfg.Runs {
		order := rep.Servers
		if i%2 == 1 && len(order) == 2 {
			order = []*serverReport{rep.Servers[1], rep.Servers[0]}
		}
		for _, srv := range order {
			var progress func(int, int)
			if !cfg.Quiet {
				label := fmt.Sprintf("%s run %d/%d", srv.Label, i+1, cfg.Runs)
				progress = func(answered, inFlight int) {
					fmt.Fprintf(stderr, "mcp-bench: %s: %d/%d answered, %d in flight\n", label, answered, cfg.Calls, inFlight)
				}
			}
			res, err := runOnce(cfg, srv.Command, progress)
			if err != nil {
				return nil, fmt.Errorf("%s (%s) run %d: %w", srv.Label, shellJoin(srv.Command), i+1, err)
			}
			srv.Runs = append(srv.Runs, res)
		}
	}
	for _, srv := range rep.Servers {
		srv.Median = map[string]float64{}
		for _, m := range metrics {
			xs := make([]float64, len(srv.Runs))
			for i, r := range srv.Runs {
				xs[i] = m.Of(r)
			}
			srv.Median[m.Name] = median(xs)
		}
		for _, r := range srv.Runs {
			for k, v := range r.ErrorSamples {
				if srv.Samples == nil {
					srv.Samples = map[string]string{}
				}
				if _, ok := srv.Samples[k]; !ok {
					srv.Samples[k] = v
				}
			}
			for k, v := range r.Errors {
				if srv.Errors == nil {
					srv.Errors = map[string]int{}
				}
				srv.Errors[k] += v
			}
		}
	}
	if len(rep.Servers) == 2 {
		rep.Ratios = map[string]float64{}
		a, b := rep.Servers[0].Median, rep.Servers[1].Median
		for _, m := range metrics {
			if b[m.Name] != 0 {
				rep.Ratios[m.Name] = a[m.Name] / b[m.Name]
			}
		}
	}
	return rep, nil
}

func (rep *report) writeText(w io.Writer) error {
	var b strings.Builder
	c := rep.Workload
	what := c.Method
	if c.Tool != "" {
		what = "tools/call " + c.Tool
	}
	pause := ""
	if c.Pause != "" {
		pause = ", pause " + c.Pause
	}
	fmt.Fprintf(&b, "workload: %s; %d calls (at most %s), concurrency %d%s, warmup %d, protocol %s\n",
		what, c.Calls, c.DurationMax, c.Concurrency, pause, c.Warmup, c.Protocol)
	fmt.Fprintf(&b, "figures: median of %d run(s), each with a fresh server\n", c.Runs)
	for _, s := range rep.Servers {
		fmt.Fprintf(&b, "%s: %s\n", s.Label, shellJoin(s.Command))
	}
	fmt.Fprintf(&b, "\n%-34s", "")
	for _, s := range rep.Servers {
		fmt.Fprintf(&b, " %14s", s.Label)
	}
	if rep.Ratios != nil {
		fmt.Fprintf(&b, " %9s", "A/B")
	}
	b.WriteByte('\n')
	for _, m := range metrics {
		fmt.Fprintf(&b, "%-34s", m.Label)
		for _, s := range rep.Servers {
			fmt.Fprintf(&b, " %14s", formatValue(s.Median[m.Name], m.Unit))
		}
		if rep.Ratios != nil {
			if r, ok := rep.Ratios[m.Name]; ok {
				fmt.Fprintf(&b, " %8.2f×", r)
			} else {
				fmt.Fprintf(&b, " %9s", "-")
			}
		}
		b.WriteByte('\n')
	}
	for _, s := range rep.Servers {
		fmt.Fprintf(&b, "%s answered: %d of %d sent", s.Label, sum(s.Runs, func(r *runResult) int { return r.Answered }), sum(s.Runs, func(r *runResult) int { return r.Sent }))
		fmt.Fprintf(&b, "; errors (all runs): %s\n", formatErrors(s.Errors))
		for _, k := range slices.Sorted(maps.Keys(s.Samples)) {
			fmt.Fprintf(&b, "  first %s: %s\n", k, s.Samples[k])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatValue(v float64, unit string) string {
	switch {
	case unit == "req/s":
		return fmt.Sprintf("%.0f %s", v, unit)
	case v != 0 && v < 10 && v > -10:
		return fmt.Sprintf("%.2f %s", v, unit)
	default:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
}

func formatErrors(errs map[string]int) string {
	if len(errs) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, errs[k]))
	}
	return strings.Join(parts, ", ")
}

func sum(runs []*runResult, f func(*runResult) int) int {
	n := 0
	for _, r := range runs {
		n += f(r)
	}
	return n
}

// writeMarkdown writes the report as a markdown section headed title.
func (rep *report) writeMarkdown(w io.Writer, title string) error {
	var b strings.Builder
	if title == "" {
		title = rep.Workload.Text
	}
	fmt.Fprintf(&b, "### %s\n\n", title)
	fmt.Fprintf(&b, "Workload: %s. Figures are medians over runs, each with a fresh server.\n\n", rep.Workload.Text)
	b.WriteString("| |")
	for _, s := range rep.Servers {
		fmt.Fprintf(&b, " %s: `%s` |", s.Label, shellJoin(s.Command))
	}
	if rep.Ratios != nil {
		b.WriteString(" A/B |")
	}
	b.WriteString("\n|---|")
	for range rep.Servers {
		b.WriteString("---:|")
	}
	if rep.Ratios != nil {
		b.WriteString("---:|")
	}
	b.WriteByte('\n')
	for _, m := range metrics {
		fmt.Fprintf(&b, "| %s |", m.Label)
		for _, s := range rep.Servers {
			fmt.Fprintf(&b, " %s |", formatValue(s.Median[m.Name], m.Unit))
		}
		if rep.Ratios != nil {
			if r, ok := rep.Ratios[m.Name]; ok {
				fmt.Fprintf(&b, " %.2f× |", r)
			} else {
				b.WriteString(" - |")
			}
		}
		b.WriteByte('\n')
	}
	b.WriteString("| answered / sent (all runs) |")
	for _, s := range rep.Servers {
		fmt.Fprintf(&b, " %d / %d |", sum(s.Runs, func(r *runResult) int { return r.Answered }), sum(s.Runs, func(r *runResult) int { return r.Sent }))
	}
	if rep.Ratios != nil {
		b.WriteString(" |")
	}
	b.WriteString("\n| errors (all runs) |")
	for _, s := range rep.Servers {
		fmt.Fprintf(&b, " %s |", formatErrors(s.Errors))
	}
	if rep.Ratios != nil {
		b.WriteString(" |")
	}
	b.WriteString("\n\n")
	for _, s := range rep.Servers {
		for _, k := range slices.Sorted(maps.Keys(s.Samples)) {
			fmt.Fprintf(&b, "First %s answer from %s: `%s`\n\n", k, s.Label, strings.ReplaceAll(s.Samples[k], "`", "'"))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
