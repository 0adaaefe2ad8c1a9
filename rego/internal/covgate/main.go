// Command covgate reads the JSON coverage report of `opa test --coverage
// --format=json` on stdin and fails unless the policy modules under a
// directory (test modules excluded) reach a threshold: the test files'
// own lines, always fully covered, would otherwise inflate the figure.
//
// Usage: opa test --coverage --format=json rego policy-tests | covgate -dir rego/ -threshold 95
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type span struct {
	Start struct{ Row int } `json:"start"`
	End   struct{ Row int } `json:"end"`
}

type report struct {
	Files map[string]struct {
		Covered    []span `json:"covered"`
		NotCovered []span `json:"not_covered"`
	} `json:"files"`
}

// rows returns the set of rows the spans cover (a report may repeat a
// span).
func rows(spans []span) map[int]bool {
	set := map[int]bool{}
	for _, s := range spans {
		for r := s.Start.Row; r <= s.End.Row; r++ {
			set[r] = true
		}
	}
	return set
}

func main() {
	dir := flag.String("dir", "rego/", "count the modules whose path starts with this")
	threshold := flag.Float64("threshold", 95, "minimum coverage in percent")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *dir, *threshold); err != nil {
		fmt.Fprintln(os.Stderr, "covgate:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, dir string, threshold float64) error {
	var r report
	if err := json.NewDecoder(in).Decode(&r); err != nil {
		return fmt.Errorf("reading the coverage report: %w", err)
	}
	names := make([]string, 0, len(r.Files))
	for name := range r.Files {
		if strings.HasPrefix(name, dir) && !strings.HasSuffix(name, "_test.rego") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("no policy modules under %s in the report", dir)
	}
	sort.Strings(names)
	covered, total := 0, 0
	for _, name := range names {
		f := r.Files[name]
		cov, miss := rows(f.Covered), rows(f.NotCovered)
		var gaps []int
		for row := range miss {
			if !cov[row] {
				gaps = append(gaps, row)
			}
		}
		sort.Ints(gaps)
		c, n := len(cov), len(gaps)
		covered, total = covered+c, total+c+n
		fmt.Fprintf(out, "%6.2f%%  %s\n", pct(c, c+n), name)
		if len(gaps) > 0 {
			fmt.Fprintf(out, "         not covered: lines %v\n", gaps)
		}
	}
	got := pct(covered, total)
	fmt.Fprintf(out, "%6.2f%%  total of %d modules under %s (threshold %.0f%%)\n", got, len(names), dir, threshold)
	if got < threshold {
		return fmt.Errorf("coverage %.2f%% is below %.0f%%", got, threshold)
	}
	return nil
}

func pct(c, n int) float64 {
	if n == 0 {
		return 100
	}
	return 100 * float64(c) / float64(n)
}
