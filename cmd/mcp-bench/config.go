package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Protocol versions mcp-bench knows how to open.
const (
	defaultProtocol   = "2025-11-25"
	statelessProtocol = "2026-07-28"
)

// Hard ceilings so that no flag combination runs unbounded.
const (
	maxCalls       = 100_000_000
	maxConcurrency = 4096
	maxRuns        = 1000
	maxDuration    = 24 * time.Hour
)

// config is one invocation of mcp-bench.
type config struct {
	Protocol    string
	Method      string          // JSON-RPC method of the workload
	Params      json.RawMessage // its params (nil: none)
	Tool        string          // set when Method is tools/call via --tool
	Calls       int
	Concurrency int
	Pause       time.Duration // lockstep: wait this long after each answer
	Duration    time.Duration
	Warmup      int
	Timeout     time.Duration // per request, and for the handshake
	Runs        int
	JSON        bool
	Markdown    bool
	Title       string
	Summary     string // file to append a markdown summary row to
	KeepEnv     bool
	Quiet       bool

	Server  []string // the server under test
	Compare []string // optional second server
}

var errUsage = errors.New("usage")

const usageText = `usage: mcp-bench [flags] -- SERVER_CMD [ARGS...] [--compare -- OTHER_CMD [ARGS...]]

Spawns an MCP stdio server, performs the handshake and measures one workload.

Flags:
`

// parseArgs reads the flags and the server command lines.
func parseArgs(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("mcp-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var params, toolArgs string
	fs.StringVar(&c.Protocol, "protocol", defaultProtocol, "protocol `version` to negotiate ("+statelessProtocol+" uses server/discover and per-request _meta)")
	fs.StringVar(&c.Method, "method", "", "JSON-RPC `method` of the workload (default ping, or tools/call with --tool)")
	fs.StringVar(&params, "params", "", "params of the workload request, a JSON object")
	fs.StringVar(&c.Tool, "tool", "", "call this tool (tools/call)")
	fs.StringVar(&toolArgs, "args", "{}", "tool arguments, a JSON object (with --tool)")
	fs.IntVar(&c.Calls, "calls", 1000, "measured requests per run")
	fs.IntVar(&c.Concurrency, "concurrency", 1, "requests in flight on the connection (1 is lockstep)")
	fs.DurationVar(&c.Pause, "pause", 0, "lockstep only: wait this long after each answer before the next request, so each request meets an idle server (what it started, e.g. a launcher, has settled)")
	fs.DurationVar(&c.Duration, "duration", time.Minute, "longest measured phase per run (ends with --calls, whichever comes first)")
	fs.IntVar(&c.Warmup, "warmup", 100, "unmeasured requests before the measured phase")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "longest wait for one answer (and for the handshake)")
	fs.IntVar(&c.Runs, "runs", 1, "repeat the run with a fresh server this many times and report medians")
	fs.BoolVar(&c.JSON, "json", false, "write the results as JSON on stdout")
	fs.BoolVar(&c.Markdown, "markdown", false, "write the results as a markdown section on stdout")
	fs.StringVar(&c.Title, "title", "", "heading of the --markdown section (default: the workload)")
	fs.StringVar(&c.Summary, "summary", "", "append one markdown table row (see summaryHeader) for this run to `file`")
	fs.BoolVar(&c.KeepEnv, "keep-env", false, "keep HOME and XDG_* instead of a fresh temporary directory per run")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	c.Server, c.Compare = splitCommands(fs.Args())
	if err := c.finish(params, toolArgs); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return c, nil
}

// splitCommands cuts "A args --compare -- B args" into its two commands.
func splitCommands(rest []string) (server, compare []string) {
	for i := 0; i+1 < len(rest); i++ {
		if rest[i] == "--compare" && rest[i+1] == "--" {
			return rest[:i], rest[i+2:]
		}
	}
	return rest, nil
}

func (c *config) finish(params, toolArgs string) error {
	if len(c.Server) == 0 {
		return errors.New("no server command: put it after --")
	}
	if c.Compare != nil && len(c.Compare) == 0 {
		return errors.New("--compare -- needs a command")
	}
	if c.JSON && c.Markdown {
		return errors.New("--json and --markdown are exclusive")
	}
	if c.Protocol == "" {
		return errors.New("--protocol is empty")
	}
	switch {
	case c.Tool != "" && c.Method != "" && c.Method != "tools/call":
		return fmt.Errorf("--tool calls tools/call, not %s", c.Method)
	case c.Tool != "" && params != "":
		return errors.New("--tool takes --args, not --params")
	case c.Tool != "":
		if !isObject(toolArgs) {
			return fmt.Errorf("--args: want a JSON object, got %q", toolArgs)
		}
		p, err := json.Marshal(map[string]any{"name": c.Tool, "arguments": json.RawMessage(toolArgs)})
		if err != nil {
			return err
		}
		c.Method, c.Params = "tools/call", p
	default:
		if c.Method == "" {
			c.Method = "ping"
		}
		if c.Method == "tools/call" {
			return errors.New("tools/call: name the tool with --tool")
		}
		if params != "" {
			if !isObject(params) {
				return fmt.Errorf("--params: want a JSON object, got %q", params)
			}
			c.Params = json.RawMessage(params)
		}
	}
	if c.Calls < 1 || c.Calls > maxCalls {
		return fmt.Errorf("--calls: want 1..%d, got %d", maxCalls, c.Calls)
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		return fmt.Errorf("--concurrency: want 1..%d, got %d", maxConcurrency, c.Concurrency)
	}
	if c.Pause < 0 || c.Pause > maxDuration {
		return fmt.Errorf("--pause: want 0 to %s, got %s", maxDuration, c.Pause)
	}
	if c.Pause > 0 && c.Concurrency != 1 {
		return fmt.Errorf("--pause is for lockstep runs (--concurrency 1), got --concurrency %d", c.Concurrency)
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		return fmt.Errorf("--duration: want more than 0 and at most %s, got %s", maxDuration, c.Duration)
	}
	if c.Warmup < 0 || c.Warmup > maxCalls {
		return fmt.Errorf("--warmup: want 0..%d, got %d", maxCalls, c.Warmup)
	}
	if c.Timeout <= 0 || c.Timeout > maxDuration {
		return fmt.Errorf("--timeout: want more than 0 and at most %s, got %s", maxDuration, c.Timeout)
	}
	if c.Runs < 1 || c.Runs > maxRuns {
		return fmt.Errorf("--runs: want 1..%d, got %d", maxRuns, c.Runs)
	}
	return nil
}

func isObject(s string) bool {
	var v map[string]json.RawMessage
	return json.Unmarshal([]byte(s), &v) == nil && v != nil
}

// stateless reports whether the protocol skips initialize (2026-07-28 on).
func (c *config) stateless() bool { return c.Protocol >= statelessProtocol }

// describe is the workload in one line.
func (c *config) describe() string {
	what := c.Method
	if c.Tool != "" {
		what = "tools/call " + c.Tool
	}
	return fmt.Sprintf("%s, %d calls (max %s), concurrency %d%s, warmup %d, protocol %s, %d run(s)",
		what, c.Calls, c.Duration, c.Concurrency, pauseText(c.Pause), c.Warmup, c.Protocol, c.Runs)
}

// pauseText describes a pause between requests for the workload line.
func pauseText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return ", pause " + d.String()
}

func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
