package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// subcommand is one command's flags with its help text. Flags are
// written --name (a single dash is accepted silently, as Go's flag
// package does); help and errors spell them one way, --name. Parse
// errors are returned, never printed: run prints each error once.
type subcommand struct {
	name     string // "policy eval"
	synopsis string // what follows the name in the usage line
	about    string // a paragraph after the usage line
	fs       *flag.FlagSet
	stdout   io.Writer
	// flagsFirst stops reading flags at the first argument (eval --exec
	// takes the rest as argv); otherwise flags and arguments may mix.
	flagsFirst bool
}

func newSubcommand(name, synopsis, about string, stdout io.Writer) *subcommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &subcommand{name: name, synopsis: synopsis, about: about, fs: fs, stdout: stdout}
}

// help writes the command's usage and flags.
func (c *subcommand) help(w io.Writer) {
	fmt.Fprintf(w, "Usage: mcp-secure %s %s\n", c.name, c.synopsis)
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.about))
	}
	// A one-letter flag with the same text as a long one is its short
	// spelling: -o, --out DIR.
	short := map[string]string{}
	c.fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			short[f.Usage] = f.Name
		}
	})
	var b strings.Builder
	c.fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 && c.hasLong(f) {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		spec := "--" + f.Name
		if len(f.Name) == 1 {
			spec = "-" + f.Name
		} else if s, ok := short[f.Usage]; ok {
			spec = "-" + s + ", " + spec
		}
		if arg != "" {
			spec += " " + strings.ToUpper(arg)
		}
		line := fmt.Sprintf("  %-24s %s", spec, usage)
		if len(spec) > 24 {
			line = fmt.Sprintf("  %s\n  %-24s %s", spec, "", usage)
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		b.WriteString(line + "\n")
	})
	b.WriteString(fmt.Sprintf("  %-24s %s\n", "-h, --help", "show this help"))
	fmt.Fprintf(w, "\nFlags:\n%s", b.String())
}

// hasLong reports whether a longer flag has f's text (f is its short
// spelling).
func (c *subcommand) hasLong(f *flag.Flag) bool {
	found := false
	c.fs.VisitAll(func(g *flag.Flag) {
		if len(g.Name) > 1 && g.Usage == f.Usage {
			found = true
		}
	})
	return found
}

// parse reads args and returns the positional arguments, which must
// number between min and max (max < 0: no limit). --help prints the
// help on stdout and returns flag.ErrHelp (exit 0).
func (c *subcommand) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.help(c.stdout)
				return nil, err
			}
			return nil, c.usageErr("%s", flagError(err))
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" || c.flagsFirst {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) > max && max >= 0 {
		if max == 0 {
			return nil, c.usageErr("unexpected argument %q: this command takes only flags", pos[0])
		}
		return nil, c.usageErr("unexpected argument %q", pos[max])
	}
	if len(pos) < min {
		return nil, c.usageErr("missing argument: mcp-secure %s %s", c.name, c.synopsis)
	}
	return pos, nil
}

// usageErr is a usage error (exit 2) naming the command and where its
// help is.
func (c *subcommand) usageErr(format string, args ...any) error {
	return usageErr("%s: %s (see mcp-secure %s --help)", c.name, fmt.Sprintf(format, args...), c.name)
}

// flagError rewrites the flag package's messages in the --name spelling.
func flagError(err error) string {
	msg := err.Error()
	for _, r := range []struct{ prefix, format string }{
		{"flag provided but not defined: ", "unknown flag %s"},
		{"flag needs an argument: ", "flag %s needs a value"},
	} {
		if name, ok := strings.CutPrefix(msg, r.prefix); ok {
			return fmt.Sprintf(r.format, "--"+strings.TrimLeft(name, "-"))
		}
	}
	// invalid value "x" for flag -name: reason
	if i := strings.Index(msg, " for flag -"); i >= 0 {
		rest := msg[i+len(" for flag -"):]
		name, reason, _ := strings.Cut(rest, ": ")
		return fmt.Sprintf("%s for --%s: %s", msg[:i], name, reason)
	}
	return msg
}
