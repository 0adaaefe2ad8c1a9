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

	"github.com/mcp-secure/mcp-secure/cmd/mcp-secure/internal/early"
	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/bundle"
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
	// quiet: the command already said what it had to (policy eval's
	// deny); only the exit code is left.
	quiet bool
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...)}
}

const usage = `mcp-secure: a security-first, policy-as-code MCP server over stdio.

Usage:
  mcp-secure [serve] [--policy FILE] [--shutdown-grace 5s] [--max-in-flight 256]
             [--reload-interval 1s]     run the server on stdin/stdout
  mcp-secure policy check [--policy FILE | --bundle URL|PATH ...]
                                        every start-up check and opa check --strict;
                                        every problem at once (exit 2 on error)
  mcp-secure [serve] --bundle URL|PATH [--bundle-key FILE --bundle-key-id ID]
             [--bundle-token-env VAR] [--bundle-min-delay 60s] [--bundle-max-delay 120s]
                                        the policy from an OPA bundle (signed, polled)
  mcp-secure policy compile [--policy FILE] [--out FILE]
                                        write the policy's data document
  mcp-secure policy eval --tool NAME [--args JSON] [--client NAME] [--explain]
  mcp-secure policy eval --network HOST:PORT [--ip ADDR] | --path PATH [--op OP] | --exec ARGV...
                                        decide one request; exit 0 allow, 1 deny, 2 error
  mcp-secure policy test [PATH...] [--coverage] [--threshold N] [--run REGEX] [-v]
                                        Rego unit tests, as opa test runs them
  mcp-secure policy export [-o DIR]     built-in modules, data document, capabilities
  mcp-secure policy replay AUDIT.log... [--policy NEW]
                                        which recorded decisions a policy would change
  mcp-secure policy schema              the JSON Schema of the policy file
  mcp-secure audit verify FILE...       check the audit log's hash chain; name
                                        rotated files first (audit.log.2 audit.log.1
                                        audit.log); exit 0 intact, 1 broken
  mcp-secure tools approve [--policy FILE] NAME...
                                        re-pin an upstream tool whose definition
                                        changed (audited); calls to it are denied
                                        until then
  mcp-secure tools pins [--policy FILE] list pinned upstream tools and changed ones
  mcp-secure version | -v | --version   print versions

Every command takes --help. Without --policy the server reads
$XDG_CONFIG_HOME/mcp-secure/policy.yaml (~/.config/mcp-secure/policy.yaml)
if it exists, else its embedded default.
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
	var ee *exitErr
	if errors.As(err, &ee) && ee.quiet {
		return ee.code
	}
	fmt.Fprintln(stderr, "mcp-secure:", err)
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitError
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) error {
	cmd, args := early.Command(args)
	if cmd != "serve" {
		early.EndStartGC() // only serve's start is worth it (see startGCPercent)
	}
	switch cmd {
	case "serve":
		p, err := parseServe(args, stdout)
		if err != nil {
			return err
		}
		if p.version {
			return printVersion(stdout)
		}
		return serve(ctx, p, stdin, stdout, log)
	case "version":
		c := newSubcommand("version", "", "Prints the versions of mcp-secure, OPA and the MCP protocol.", stdout)
		if _, err := c.parse(args, 0, 0); err != nil {
			return err
		}
		return printVersion(stdout)
	case "policy":
		return policyCmd(ctx, args, stdout, stderr)
	case "audit":
		return auditCmd(args, stdout, stderr)
	case "tools":
		return toolsCmd(ctx, args, stdout, stderr)
	case "help":
		if len(args) > 0 {
			return usageErr("help: unexpected argument %q (run mcp-secure %s --help)", args[0], args[0])
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageErr("unknown command %q (see mcp-secure --help)", cmd)
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
	bundleChanged chan struct{}       // a new bundle is current (buffered, 1)
	bundleRefused chan bundle.Refusal // refused bundles to audit (buffered)
}

func parseServe(args []string, stdout io.Writer) (serveParams, error) {
	var p serveParams
	c := newSubcommand("serve", "[--policy FILE] [--shutdown-grace 5s] [--max-in-flight 256] [--reload-interval 1s] [--bundle URL|PATH ...]", `
Runs the MCP server on stdin/stdout. Logs go to stderr; every decision is
recorded in the audit log the policy names.`, stdout)
	c.fs.StringVar(&p.policyFile, "policy", "", "policy `file` (YAML); default: the user's policy, else the embedded one")
	c.fs.BoolVar(&p.version, "version", false, "print versions and exit")
	c.fs.BoolVar(&p.version, "v", false, "print versions and exit")
	c.fs.DurationVar(&p.shutdownGrace, "shutdown-grace", server.DefaultShutdownGrace, "on SIGTERM, how long calls in flight may finish before they are cancelled")
	c.fs.IntVar(&p.maxInFlight, "max-in-flight", server.DefaultMaxInFlight, "requests in flight at most; the excess is answered with an error")
	c.fs.DurationVar(&p.reloadEvery, "reload-interval", DefaultReloadInterval, "how often the policy file and its modules are checked for changes (0: reload on SIGHUP only)")
	addBundleFlags(c.fs, &p.bundle)
	if _, err := c.parse(args, 0, 0); err != nil {
		return p, err
	}
	if p.shutdownGrace < 0 {
		return p, c.usageErr("--shutdown-grace must not be negative")
	}
	if p.maxInFlight < 1 {
		return p, c.usageErr("--max-in-flight must be at least 1")
	}
	if p.reloadEvery < 0 {
		return p, c.usageErr("--reload-interval must not be negative")
	}
	return p, nil
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "mcp-secure %s\nOPA %s\nMCP protocol versions: %s\n",
		version, opaversion.Version, strings.Join(mcp.SupportedProtocolVersions(), ", "))
	return err
}
