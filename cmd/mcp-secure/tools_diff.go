package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf16"

	"github.com/mcp-secure/mcp-secure/server/pins"
)

// diffPins prints, for each named tool, how the definition its upstream
// offers differs from the one pinned: what an operator reads before
// `tools approve`. A name never seen is an error, after the others are
// printed.
func diffPins(w io.Writer, store *pins.Store, names []string) error {
	entries, err := store.Entries()
	if err != nil {
		return &exitErr{code: exitError, err: err}
	}
	var unknown []string
	for i, name := range names {
		if i > 0 {
			fmt.Fprintln(w)
		}
		e, ok := entries[name]
		if !ok {
			unknown = append(unknown, name)
			fmt.Fprintf(w, "%s: no definition of it has been seen\n", name)
			continue
		}
		if err := diffEntry(w, name, e); err != nil {
			return &exitErr{code: exitError, err: err}
		}
	}
	if len(unknown) > 0 {
		return &exitErr{code: exitError, err: fmt.Errorf("tools diff: %q: no definition seen (is the name as clients see it, prefix included?)", unknown)}
	}
	return nil
}

// diffEntry prints one tool's state and, when it changed or is new, the
// definition offered against the one pinned.
func diffEntry(w io.Writer, name string, e pins.Entry) error {
	const stamp = "2006-01-02T15:04:05Z"
	pinned := e.PinnedDefinition
	if pinned != nil {
		// The file is the server's, but what it keeps is shown only when it
		// is what the pin says.
		if !pins.Matches(*pinned, e.Pinned) {
			pinned = nil
		}
	}
	switch {
	case e.Pinned == "":
		fmt.Fprintf(w, "%s: PENDING, a new tool offered %s since %s, not pinned; approving it pins:\n", name, short(e.Seen), e.SeenAt.Format(stamp))
		return printDefinitionDiff(w, nil, e.SeenDefinition)
	case e.Seen == "":
		fmt.Fprintf(w, "%s: pinned %s since %s, offered unchanged\n", name, short(e.Pinned), e.PinnedAt.Format(stamp))
		return nil
	case pinned == nil:
		fmt.Fprintf(w, "%s: CHANGED, pinned %s since %s, offered %s since %s; the pinned definition was not kept (pinned by an older version, or the file was edited), so all of what is offered now is shown:\n",
			name, short(e.Pinned), e.PinnedAt.Format(stamp), short(e.Seen), e.SeenAt.Format(stamp))
		return printDefinitionDiff(w, nil, e.SeenDefinition)
	default:
		fmt.Fprintf(w, "%s: CHANGED, pinned %s since %s, offered %s since %s:\n", name, short(e.Pinned), e.PinnedAt.Format(stamp), short(e.Seen), e.SeenAt.Format(stamp))
		return printDefinitionDiff(w, pinned, e.SeenDefinition)
	}
}

// printDefinitionDiff prints the line diff of two definitions' canonical
// documents (old may be nil: all of now is new), indented JSON with keys
// sorted, as their hashes are taken: "-" lines are the pinned one's, "+"
// the one offered, with three lines of context.
func printDefinitionDiff(w io.Writer, old, now *pins.Definition) error {
	if now == nil {
		return errors.New("tools diff: the pins file holds no definition for what is offered")
	}
	a, err := definitionLines(old)
	if err != nil {
		return err
	}
	b, err := definitionLines(now)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "--- pinned")
	fmt.Fprintln(w, "+++ offered")
	printEdits(w, lineDiff(a, b), 3)
	return nil
}

// definitionLines is d's canonical document as indented JSON lines; none
// for nil.
func definitionLines(d *pins.Definition) ([]string, error) {
	if d == nil {
		return nil, nil
	}
	doc, err := pins.Canonical(*d)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a description's <, > and & as written
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(visible(buf.String()), "\n"), "\n"), nil
}

// visible escapes, as JSON does, every character of s a terminal would
// not show as itself (bidirectional overrides, zero-width and other
// format characters; JSON escapes control characters already), so that
// a definition cannot hide or reorder what the operator reads. Outside
// strings, indented JSON holds none.
func visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == ' ' || unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
			continue
		}
		fmt.Fprintf(&b, "\\u%04x", r)
	}
	return b.String()
}

// edit is one line of a diff: ' ' kept, '-' only in the old, '+' only in
// the new.
type edit struct {
	op   byte
	line string
}

// maxDiffCells bounds the table lineDiff fills; past it, the lines that
// differ are shown as all removed, then all added.
const maxDiffCells = 1 << 22

// lineDiff is a shortest edit script from a to b: their common prefix and
// suffix kept, the middle by longest common subsequence.
func lineDiff(a, b []string) []edit {
	var out []edit
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	for _, l := range a[:pre] {
		out = append(out, edit{' ', l})
	}
	x, y := a[pre:len(a)-suf], b[pre:len(b)-suf]
	if (len(x)+1)*(len(y)+1) > maxDiffCells {
		for _, l := range x {
			out = append(out, edit{'-', l})
		}
		for _, l := range y {
			out = append(out, edit{'+', l})
		}
	} else {
		// lcs[i][j] is the length of the longest common subsequence of
		// x[i:] and y[j:].
		n, m := len(x), len(y)
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if x[i] == y[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && x[i] == y[j]:
				out = append(out, edit{' ', x[i]})
				i, j = i+1, j+1
			case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
				out = append(out, edit{'-', x[i]})
				i++
			default:
				out = append(out, edit{'+', y[j]})
				j++
			}
		}
	}
	for _, l := range a[len(a)-suf:] {
		out = append(out, edit{' ', l})
	}
	return out
}

// printEdits prints the changed lines of edits with context lines of
// what is kept around each; "..." stands for kept lines left out.
func printEdits(w io.Writer, edits []edit, context int) {
	show := make([]bool, len(edits))
	for i, e := range edits {
		if e.op == ' ' {
			continue
		}
		for k := max(0, i-context); k <= min(len(edits)-1, i+context); k++ {
			show[k] = true
		}
	}
	skipped := false
	for i, e := range edits {
		if !show[i] {
			skipped = true
			continue
		}
		if skipped {
			fmt.Fprintln(w, " ...")
			skipped = false
		}
		fmt.Fprintf(w, "%c%s\n", e.op, e.line)
	}
	if skipped {
		fmt.Fprintln(w, " ...")
	}
}
