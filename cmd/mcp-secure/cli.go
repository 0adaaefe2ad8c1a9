package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	opaversion "github.com/open-policy-agent/opa/v1/version"

	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/audit"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the server failed while running
	exitUsage = 2 // bad flags or a bad policy
)

// exitError carries the process exit code with the error that caused it.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...)}
}

const usage = `mcp-secure: a security-first, policy-as-code MCP server over stdio.

Usage:
  mcp-secure [serve] [--policy FILE] [--shutdown-grace 5s] [--max-in-flight 256]
                                           run the server on stdin/stdout
  mcp-secure [serve] --bundle URL|PATH [--bundle-key FILE --bundle-key-id ID]
             [--bundle-token-env VAR] [--bundle-min-delay 60s] [--bundle-max-delay 120s]
                                           the policy from an OPA bundle (signed, polled)
  mcp-secure policy check [--policy FILE]  run every start-up check on a policy; print
                                           defaulted sections and warnings (exit 2 on error)
  mcp-secure policy compile [--policy FILE] [--out FILE]
                                           write the policy's data document (for opa test)
  mcp-secure audit verify FILE...          check the audit log's hash chain; name
                                           rotated files first (audit.log.2 audit.log.1
                                           audit.log); exit 0 intact, 1 broken
  mcp-secure version | --version           print versions

Without --policy the server reads $XDG_CONFIG_HOME/mcp-secure/policy.yaml
(~/.config/mcp-secure/policy.yaml) if it exists, else its embedded default.
`

// stderrLevel is the level of the stderr log: INFO, or DEBUG when the
// policy's audit.log_level says so.
var stderrLevel slog.LevelVar

// run is the whole command behind main, with its I/O passed in.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Every line on stderr is redacted: URLs lose their userinfo and query
	// values, secret-shaped parts are replaced.
	stderrLevel.Set(slog.LevelInfo)
	log := slog.New(audit.NewRedactingHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &stderrLevel}), nil))
	err := dispatch(ctx, args, stdin, stdout, stderr, log)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "mcp-secure:", err)
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitError
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		p, err := parseServe(args, stderr)
		if err != nil {
			return err
		}
		if p.version {
			return printVersion(stdout)
		}
		return serve(ctx, p, stdin, stdout, log)
	case "version":
		return printVersion(stdout)
	case "policy":
		return policyCmd(ctx, args, stdout, stderr)
	case "audit":
		return auditCmd(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageErr("unknown command %q", cmd)
	}
}

type serveParams struct {
	policyFile    string
	version       bool
	shutdownGrace time.Duration
	maxInFlight   int
	// reloadEvery is how often the policy's files are polled for
	// changes; 0 leaves reloads to SIGHUP.
	reloadEvery   time.Duration
	bundle        bundleParams
	bundleChanged chan struct{} // a new bundle is current (buffered, 1)
}

func parseServe(args []string, stderr io.Writer) (serveParams, error) {
	var p serveParams
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&p.policyFile, "policy", "", "policy `file` (YAML)")
	fs.BoolVar(&p.version, "version", false, "print versions and exit")
	fs.DurationVar(&p.shutdownGrace, "shutdown-grace", server.DefaultShutdownGrace, "on SIGTERM, how long calls in flight may finish before they are cancelled")
	fs.IntVar(&p.maxInFlight, "max-in-flight", server.DefaultMaxInFlight, "requests in flight at most; the excess is answered with an error")
	fs.DurationVar(&p.reloadEvery, "reload-interval", DefaultReloadInterval, "how often the policy file and its modules are checked for changes (0: reload on SIGHUP only)")
	addBundleFlags(fs, &p.bundle)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return p, err
		}
		return p, &exitErr{code: exitUsage, err: err}
	}
	if fs.NArg() > 0 {
		return p, usageErr("unexpected argument %q", fs.Arg(0))
	}
	if p.shutdownGrace < 0 || p.maxInFlight < 1 || p.reloadEvery < 0 {
		return p, usageErr("--shutdown-grace and --reload-interval must not be negative and --max-in-flight must be at least 1")
	}
	return p, nil
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "mcp-secure %s\nOPA %s\nMCP protocol versions: %s\n",
		version, opaversion.Version, strings.Join(mcp.SupportedProtocolVersions(), ", "))
	return err
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}
