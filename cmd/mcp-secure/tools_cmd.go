package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/pins"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// toolsCmd runs `mcp-secure tools approve NAME...` (re-pin the definition
// last seen, with an audit record), `mcp-secure tools pins` (list the
// pinned tools and those whose definition changed) and `mcp-secure tools
// diff NAME...` (show what changed).
func toolsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "-help") {
		_, err := fmt.Fprint(stdout, toolsUsage)
		return err
	}
	if len(args) == 0 || (args[0] != "approve" && args[0] != "pins" && args[0] != "diff") {
		return usageErr("tools: want `tools pins`, `tools diff NAME...` or `tools approve NAME...` (see mcp-secure tools --help)")
	}
	sub := args[0]
	var file string
	var c *subcommand
	if sub == "approve" {
		c = newSubcommand("tools approve", "[--policy FILE] NAME[@HASH]...", `
Re-pins the definitions last seen of the named upstream tools (as clients
see them, prefix included), with an audit record; calls to a tool whose
definition changed, or that an upstream added after its initial listing,
are denied until then. NAME@HASH (as tools diff prints it) approves only
the definition you reviewed: if the upstream offers another since,
nothing is approved.`, stdout)
	} else if sub == "diff" {
		c = newSubcommand("tools diff", "[--policy FILE] NAME...", `
Shows how the definition an upstream offers for each named tool differs
from the one pinned (its description, title, schemas and annotations, as
indented JSON: "-" lines pinned, "+" lines offered); for a tool pending
approval, all of what approving it would pin.`, stdout)
	} else {
		c = newSubcommand("tools pins", "[--policy FILE]", `
Lists the pinned upstream tools, those whose definition changed, and
those pending approval (added after their server's initial listing).`, stdout)
	}
	c.fs.StringVar(&file, "policy", "", "policy `file` (YAML)")
	maxArgs := 0
	if sub != "pins" {
		maxArgs = -1
	}
	names, err := c.parse(args[1:], 0, maxArgs)
	if err != nil {
		return err
	}
	pol, err := loadPolicy(file)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	store, err := pins.Open(pins.PathFor(pol.Audit.LogFile))
	if err != nil {
		return &exitErr{code: exitError, err: err}
	}
	if sub == "pins" {
		return listPins(stdout, store, pins.PathFor(pol.Audit.LogFile))
	}
	if sub == "diff" {
		if len(names) == 0 {
			return c.usageErr("name the tools to show (as clients see them, e.g. docs__read_file)")
		}
		return diffPins(stdout, store, names)
	}
	if len(names) == 0 {
		return c.usageErr("name the tools to approve (as clients see them, e.g. docs__read_file)")
	}
	// NAME@HASH approves only the definition of that hash (a prefix of at
	// least 8 hex digits, as tools diff prints it): an upstream that
	// changes it again after the review gets nothing approved. Every
	// argument is checked before anything is approved.
	for _, arg := range names {
		if _, want, reviewed := strings.Cut(arg, "@"); reviewed && !hashPrefix(want) {
			return c.usageErr("%s: give the hash as tools diff prints it (at least 8 hex digits) after the @", arg)
		}
	}
	// The approval is written as the server writes its records: with the
	// policy's audit.include and mask rules.
	cfg, err := engineConfig(pol)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	eng, err := engine.New(ctx, cfg)
	if err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("policy %s: %w", pol.Source(), err)}
	}
	alog, _, err := openAuditLog(pol, eng, audit.Options{
		Labels: map[string]string{"service": "mcp-secure", "version": version, "command": "tools approve"},
	})
	if err != nil {
		return &exitErr{code: exitError, err: err}
	}
	defer alog.Close()
	for _, arg := range names {
		name, want, _ := strings.Cut(arg, "@")
		// The record is written before the pin: no approval is kept
		// without it.
		old, pinned, err := store.ApproveRecorded(name, strings.ToLower(want), func(old, pinned string) error {
			reason := "approved by the operator: definition re-pinned"
			if old == pinned {
				reason = "approved by the operator: definition unchanged, pinned already"
			}
			if err := alog.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: kindToolDefinition, Tool: name,
				Result: audit.ResultAllow, Reasons: []string{reason},
				Input: map[string]any{"previous": old, "pinned": pinned}}); err != nil {
				return fmt.Errorf("tools approve: the audit record could not be written, so %s is not approved: %w", name, err)
			}
			return nil
		})
		if errors.Is(err, pins.ErrUnknownTool) {
			return &exitErr{code: exitError, err: fmt.Errorf("tools approve: %q: %s", name, notSeenHint)}
		}
		if errors.Is(err, pins.ErrNotReviewed) {
			return &exitErr{code: exitError, err: fmt.Errorf("tools approve: %q: nothing approved: the definition offered now is %s, not the %s reviewed; review it again with mcp-secure tools diff %s", name, short(pinned), want, name)}
		}
		if err != nil {
			return &exitErr{code: exitError, err: err}
		}
		switch {
		case old == "":
			fmt.Fprintf(stdout, "%s: approved, pinned %s (a new tool)\n", name, short(pinned))
		case old == pinned:
			fmt.Fprintf(stdout, "%s: unchanged, pinned %s\n", name, short(pinned))
		default:
			fmt.Fprintf(stdout, "%s: approved, pinned %s (was %s)\n", name, short(pinned), short(old))
		}
	}
	return nil
}

const toolsUsage = `Usage: mcp-secure tools pins [--policy FILE]
       mcp-secure tools diff [--policy FILE] NAME...
       mcp-secure tools approve [--policy FILE] NAME[@HASH]...

Upstream tools' definitions (name, description, schemas) are pinned by
hash; a changed one is denied until approved. Tools at a server's initial
listing are pinned on first sight; a tool first seen later (added or
renamed at run time) is pending, denied until approved. tools diff shows
what changed, against the definition pinned.
`

func listPins(w io.Writer, store *pins.Store, path string) error {
	entries, err := store.Entries()
	if err != nil {
		return &exitErr{code: exitError, err: err}
	}
	if len(entries) == 0 {
		fmt.Fprintf(w, "no upstream tool has been seen yet (pins file %s)\n", path)
		return nil
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := entries[n]
		desc := ""
		if e.SeenDefinition != nil {
			desc = e.SeenDefinition.Description
		}
		if e.Pinned == "" {
			fmt.Fprintf(w, "%s\tPENDING\tnew tool, not pinned: offered %s since %s; description: %s\n", n, short(e.Seen), e.SeenAt.Format("2006-01-02T15:04:05Z"), visible(fmt.Sprintf("%q", desc)))
			continue
		}
		if e.Seen != "" {
			fmt.Fprintf(w, "%s\tCHANGED\tpinned %s, offered %s since %s; description now: %s (tools diff %s shows all that changed)\n", n, short(e.Pinned), short(e.Seen), e.SeenAt.Format("2006-01-02T15:04:05Z"), visible(fmt.Sprintf("%q", desc)), n)
			continue
		}
		fmt.Fprintf(w, "%s\tpinned\t%s since %s\n", n, short(e.Pinned), e.PinnedAt.Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// notSeenHint says why a tool name may be unknown to the pins file.
var notSeenHint = fmt.Sprintf("no definition of it has been seen (is the name as clients see it, prefix included? A server with %d tools waiting for approval has its further new tools left out until some are approved; the server's log names them)", pins.MaxPending)

// hashPrefix reports whether s is at least 8 hex digits.
func hashPrefix(s string) bool {
	if len(s) < 8 {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// closeAll closes plugins that were started but never served.
func closeAll(ps []plugin.Plugin, log *slog.Logger) {
	for _, p := range ps {
		if c, ok := p.(plugin.Closer); ok {
			if err := c.Close(); err != nil {
				log.Error("closing upstream", "err", err)
			}
		}
	}
}
