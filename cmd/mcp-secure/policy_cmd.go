package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/policy"
)

const policyUsage = `Usage: mcp-secure policy COMMAND [flags]

Commands:
  check    every start-up check and opa check --strict on the Rego; every problem at once
  compile  write the policy's data document (data.mcp.policy)
  eval     decide one tool call, connection, path or command, with --explain
  test     run Rego unit tests over the built-in and the policy's modules
  export   write the built-in modules, the data document and capabilities.json
  replay   re-decide the decisions of audit logs under a policy; report the changes
  schema   print the JSON Schema of the policy file

Run mcp-secure policy COMMAND --help for a command's flags.
`

// policyCmds are the policy subcommands by name.
var policyCmds = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"check":   policyCheckCmd,
	"compile": policyCompileCmd,
	"eval":    policyEvalCmd,
	"test":    policyTestCmd,
	"export":  policyExportCmd,
	"replay":  policyReplayCmd,
	"schema":  policySchemaCmd,
}

func policyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("policy: name a command: check, compile, eval, test, export, replay or schema (see mcp-secure policy --help)")
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		_, err := io.WriteString(stdout, policyUsage)
		return err
	}
	f, ok := policyCmds[args[0]]
	if !ok {
		return usageErr("policy: unknown command %q (see mcp-secure policy --help)", args[0])
	}
	return f(ctx, args[1:], stdout, stderr)
}

// policyFlag adds --policy to c.
func policyFlag(c *subcommand, file *string) {
	c.fs.StringVar(file, "policy", "", "policy `file` (YAML); default: the user's policy, else the embedded one")
}

// policyArg reads the policy file from --policy or the one argument the
// command takes in its place.
func policyArg(c *subcommand, args []string, file *string) error {
	pos, err := c.parse(args, 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		if *file != "" {
			return c.usageErr("unexpected argument %q: the policy is already --policy %s", pos[0], *file)
		}
		*file = pos[0]
	}
	return nil
}

func policyCheckCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy check", "[--policy FILE | FILE]", `
Runs every check the server runs at start-up, and opa check --strict over
the built-in modules and the policy's own (rego.modules) against the
shipped capabilities. Prints the sections left to their defaults and the
warnings; exit 2 with every problem found, each with file, line and key.`, stdout)
	var file string
	policyFlag(c, &file)
	var bp bundleParams
	addBundleFlags(c.fs, &bp)
	bp.once = true
	if err := policyArg(c, args, &file); err != nil {
		return err
	}
	if bp.location != "" {
		// The bundle as serve would take it: fetched once, verified and
		// checked, then linted.
		chk, src, err := servePolicy(ctx, serveParams{policyFile: file, bundle: bp}, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		if src != nil {
			src.Stop(ctx)
		}
		if problems := lint(chk.cfg); len(problems) > 0 {
			return &exitErr{code: exitUsage, err: fmt.Errorf("bundle %s: opa check --strict: %d problems:\n%s", bp.location, len(problems), strings.Join(problems, "\n"))}
		}
		return report(stdout, chk)
	}
	pol, err := loadPolicy(file)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	cfg, err := engineConfig(pol)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	if problems := lint(cfg); len(problems) > 0 {
		return &exitErr{code: exitUsage, err: fmt.Errorf("policy %s: opa check --strict: %d problems:\n%s", pol.Source(), len(problems), strings.Join(problems, "\n"))}
	}
	// The checks serve runs before it starts, nothing less.
	chk, err := checkPolicy(ctx, file)
	if err != nil {
		return err
	}
	return report(stdout, chk)
}

func policyCompileCmd(_ context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy compile", "[--policy FILE | FILE] [--out FILE]", `
Writes the policy's data document ({"mcp": {"policy": ...}}), for opa test
and opa eval. policy export writes it with the built-in modules.`, stdout)
	var file, out string
	policyFlag(c, &file)
	c.fs.StringVar(&out, "out", "", "write the data document to `file` instead of stdout")
	if err := policyArg(c, args, &file); err != nil {
		return err
	}
	pol, err := loadPolicy(file)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	cfg, err := engineConfig(pol)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	data, err := dataDocument(cfg.Data)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = stdout.Write(data)
		return err
	}
	return os.WriteFile(out, data, 0o644)
}

// dataDocument is the policy data as opa reads it, indented JSON.
func dataDocument(data map[string]any) ([]byte, error) {
	doc := map[string]any{"mcp": map[string]any{"policy": data}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func policySchemaCmd(_ context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy schema", "", `
Prints the JSON Schema (draft 2020-12) of the policy file, generated from
the types that load it (the repository's policy.schema.json). Point an
editor at it with a first line of
  # yaml-language-server: $schema=`+policy.SchemaID, stdout)
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	s, err := policy.Schema()
	if err != nil {
		return err
	}
	_, err = stdout.Write(s)
	return err
}

// report writes what `policy check` found: ok, the sections the policy
// leaves to their defaults, and warnings.
func report(w io.Writer, chk *checked) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok (%d built-in modules, %d user modules, %d tools)\n",
		chk.pol.Source(), len(chk.cfg.Modules), len(chk.cfg.UserModules), len(chk.tools))
	if chk.revision() != "" {
		fmt.Fprintf(&b, "bundle revision: %s\n", chk.revision())
	}
	for _, d := range chk.pol.Defaulted() {
		fmt.Fprintf(&b, "default: %s\n", d)
	}
	for _, warn := range chk.warnings {
		fmt.Fprintf(&b, "warning: %s\n", warn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
