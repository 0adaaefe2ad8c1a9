package bugtracker

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/plugin/plugintest"
)

// The benchmark fixture: 100,000 bugs over 100 projects, with titles,
// descriptions and notes drawn from a Zipf-distributed vocabulary, built
// once per test binary and copied for each benchmark.
const (
	benchProjects       = 100
	benchBugsPerProject = 1000
	benchBuildLimit     = 3 * time.Minute
)

var bench struct {
	once       sync.Once
	dir        string // holds ws/ (project directories) and bugs.db
	db         string
	projects   []string
	vocabulary []string
	err        error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// vocabulary makes n distinct pseudo-words from syllables.
func vocabulary(n int) []string {
	syl := []string{"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "xi", "zu", "pa", "do", "fi", "ge", "hu", "jo"}
	words := make([]string, 0, n)
	for i := 0; len(words) < n; i++ {
		var sb strings.Builder
		for x := i + 7; x > 0 || sb.Len() < 4; x /= len(syl) {
			sb.WriteString(syl[x%len(syl)])
		}
		words = append(words, sb.String())
	}
	return words
}

// benchFixture builds the template database, once.
func benchFixture(b *testing.B) {
	b.Helper()
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "bugtracker-bench-")
		if bench.err != nil {
			return
		}
		bench.err = buildFixture()
	})
	if bench.err != nil {
		b.Fatalf("fixture: %v", bench.err)
	}
}

func buildFixture() error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), benchBuildLimit)
	defer cancel()
	dir, err := filepath.EvalSymlinks(bench.dir)
	if err != nil {
		return err
	}
	bench.dir = dir
	bench.db = filepath.Join(dir, "bugs.db")
	bench.vocabulary = vocabulary(2000)
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 2, uint64(len(bench.vocabulary)-1))
	words := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = bench.vocabulary[zipf.Uint64()]
		}
		return strings.Join(w, " ")
	}
	tags := []string{"ui", "api", "db", "auth", "perf", "security", "docs", "build", "ci", "infra", "mobile", "web", "cli", "i18n", "regression", "flaky"}

	opts := defaultStoreOptions()
	opts.synchronous = "OFF" // the fixture only; benchmarks use the defaults
	st, err := openStore(ctx, bench.db, opts)
	if err != nil {
		return err
	}
	defer st.close()
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	err = func() error {
		prep := func(q string) *sql.Stmt {
			s, perr := tx.PrepareContext(ctx, q)
			if perr != nil && err == nil {
				err = perr
			}
			return s
		}
		insProject := prep(`INSERT INTO projects (id, path, next_seq, created_at) VALUES (?, ?, ?, ?)`)
		insBug := prep(`INSERT INTO bugs (id, project_id, seq, title, description, status, priority, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		insTag := prep(`INSERT INTO bug_tags (bug_id, project_id, tag) VALUES (?, ?, ?)`)
		insNote := prep(`INSERT INTO bug_history (bug_id, at, changes, note) VALUES (?, ?, '{}', ?)`)
		insFTS := prep(`INSERT INTO bugs_fts (rowid, title, description, notes) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		at := "2026-01-01T00:00:00.000000Z"
		// Bugs are interleaved across projects, as they would be filed.
		for p := range benchProjects {
			path := filepath.Join(dir, "ws", fmt.Sprintf("project-%03d", p))
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
			bench.projects = append(bench.projects, path)
			if _, err := insProject.ExecContext(ctx, p+1, path, benchBugsPerProject+1, at); err != nil {
				return err
			}
		}
		var rowid int64
		for seq := 1; seq <= benchBugsPerProject; seq++ {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("fixture not built within %v: %w", benchBuildLimit, err)
			}
			for p := range benchProjects {
				rowid++
				title, desc := words(4+rng.IntN(4)), words(15+rng.IntN(20))
				status := Statuses[[]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3}[rng.IntN(10)]]
				priority := Priorities[[]int{0, 0, 0, 1, 1, 1, 1, 2, 2, 3}[rng.IntN(10)]]
				if _, err := insBug.ExecContext(ctx, rowid, p+1, seq, title, desc, status, priority, at, at); err != nil {
					return err
				}
				bugTags := []string{}
				for _, i := range rng.Perm(len(tags))[:rng.IntN(4)] {
					bugTags = append(bugTags, tags[i])
				}
				if seq%100 == 0 {
					bugTags = append(bugTags, "rare") // 10 bugs per project
				}
				for _, tag := range bugTags {
					if _, err := insTag.ExecContext(ctx, rowid, p+1, tag); err != nil {
						return err
					}
				}
				note := ""
				if rng.IntN(10) < 3 {
					note = words(8)
					if _, err := insNote.ExecContext(ctx, rowid, at, note); err != nil {
						return err
					}
				}
				if _, err := insFTS.ExecContext(ctx, rowid, title, desc, note); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return err
	}
	// Merge the index into one segment, as years of incremental merging
	// would, rather than leave one huge fresh segment for the first
	// benchmarked writes to merge. No ANALYZE: the server does not run it
	// either.
	if _, err := st.w.ExecContext(ctx, `INSERT INTO bugs_fts (bugs_fts) VALUES ('optimize')`); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bugtracker bench fixture: %d bugs in %d projects built in %v\n",
		benchProjects*benchBugsPerProject, benchProjects, time.Since(start).Round(time.Millisecond))
	return nil
}

// benchTool copies the fixture database and returns the named tool of a
// tracker on it, with default store options.
func benchTool(b *testing.B, name string) plugin.Tool {
	b.Helper()
	benchFixture(b)
	data := b.TempDir()
	db := filepath.Join(data, "bugs.db")
	if err := copyFile(bench.db, db); err != nil {
		b.Fatal(err)
	}
	b.Setenv(DatabaseEnv, db)
	tr, err := newTracker(&plugintest.Host{FS: plugintest.DirFiles{Roots: []string{filepath.Join(bench.dir, "ws")}}}, defaultStoreOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.close() })
	for _, t := range tr.Tools() {
		if t.Name == name {
			return t
		}
	}
	b.Fatalf("no tool %s", name)
	return plugin.Tool{}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// runTool calls the handler b.N times (after one warm-up call that opens
// the database) and fails on an error result.
func runTool(b *testing.B, tool plugin.Tool, args map[string]any, check func(*plugin.Result)) {
	b.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		b.Fatal(err)
	}
	call := &plugin.Call{Tool: tool.Name, Arguments: raw}
	ctx := b.Context()
	res, err := tool.Handler(ctx, call)
	if err != nil || res.IsError {
		b.Fatalf("%s: %v %+v", tool.Name, err, res)
	}
	if check != nil {
		check(res)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := tool.Handler(ctx, call)
		if err != nil || res.IsError {
			b.Fatalf("%s: %v %+v", tool.Name, err, res)
		}
	}
}

func BenchmarkAddBug(b *testing.B) {
	tool := benchTool(b, "add_bug")
	runTool(b, tool, map[string]any{
		"project_path": bench.projects[42],
		"title":        "Benchmark bug: the cache returns stale entries",
		"description":  "After a deploy the cache keeps serving the previous version for a few minutes.",
		"priority":     "high",
		"tags":         []string{"perf", "regression"},
	}, nil)
}

type benchCase struct {
	name string
	args map[string]any
}

func BenchmarkListBugsFiltered(b *testing.B) {
	for _, c := range []benchCase{
		{"status", map[string]any{"status": "open"}},
		{"status+priority+tag", map[string]any{"status": "open", "priority": "high", "tags": []string{"ui"}}},
		{"two-tags", map[string]any{"tags": []string{"ui", "api"}}},
		{"rare-tag", map[string]any{"tags": []string{"rare"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tool := benchTool(b, "list_bugs")
			c.args["project_path"] = bench.projects[42]
			runTool(b, tool, c.args, func(res *plugin.Result) {
				if res.Structured.(*Page).Count == 0 {
					b.Fatalf("no bugs listed: %s", res.Text)
				}
			})
		})
	}
}

func BenchmarkSearchGlobalText(b *testing.B) {
	benchFixture(b)
	v := bench.vocabulary
	for _, c := range []benchCase{
		{"common-word", map[string]any{"query": v[2]}},
		{"mid-word", map[string]any{"query": v[150]}},
		{"rare-word", map[string]any{"query": v[1500]}},
		{"two-words", map[string]any{"query": v[20] + " " + v[60]}},
		{"word+status+tag", map[string]any{"query": v[60], "status": "open", "tags": []string{"security"}}},
		{"filters-only", map[string]any{"status": "in_progress", "priority": "critical", "tags": []string{"db"}}},
		{"rare-tag", map[string]any{"tags": []string{"rare"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tool := benchTool(b, "search_bugs_global")
			runTool(b, tool, c.args, func(res *plugin.Result) {
				if res.Structured.(*Page).Count == 0 {
					b.Fatalf("no bugs found: %s", res.Text)
				}
			})
		})
	}
}
