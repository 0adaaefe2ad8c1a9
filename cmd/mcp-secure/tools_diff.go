package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
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
	shown := 0
	for _, name := range names {
		e, ok := entries[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		if shown > 0 {
			fmt.Fprintln(w)
		}
		shown++
		if err := diffEntry(w, name, e); err != nil {
			return &exitErr{code: exitError, err: err}
		}
	}
	if len(unknown) > 0 {
		return &exitErr{code: exitError, err: fmt.Errorf("tools diff: %s: %s", strings.Join(unknown, ", "), notSeenHint)}
	}
	return nil
}

// diffEntry prints one tool's state and, when it changed or is new, the
// definition offered against the one pinned, and how to approve what it
// showed.
func diffEntry(w io.Writer, name string, e pins.Entry) error {
	const stamp = "2006-01-02T15:04:05Z"
	// The file is the server's, but what it keeps is shown only when it
	// is what the hash says.
	kept := func(d *pins.Definition, h string) *pins.Definition {
		if d == nil || !pins.Matches(*d, h) {
			return nil
		}
		return d
	}
	pinned, seen := kept(e.PinnedDefinition, e.Pinned), kept(e.SeenDefinition, e.Seen)
	switch {
	case e.Seen == "":
		fmt.Fprintf(w, "%s: pinned %s since %s, unchanged as last listed\n", name, short(e.Pinned), e.PinnedAt.Format(stamp))
		return nil
	case e.Pinned == "":
		fmt.Fprintf(w, "%s: PENDING, a new tool offered %s since %s, not pinned\n", name, short(e.Seen), e.SeenAt.Format(stamp))
	default:
		fmt.Fprintf(w, "%s: CHANGED, pinned %s since %s, offered %s since %s\n", name, short(e.Pinned), e.PinnedAt.Format(stamp), short(e.Seen), e.SeenAt.Format(stamp))
	}
	switch {
	case seen == nil:
		fmt.Fprintf(w, "the definition offered was not kept (past the %d MiB of definitions the pins file keeps, %d MiB of one server's, or the file was edited): only its hash, %s, is known\n", pins.MaxKept>>20, pins.MaxKeptPerServer>>20, e.Seen)
	default:
		if e.Pinned != "" && pinned == nil {
			fmt.Fprintf(w, "the pinned definition was not kept (pinned by an older version, past the %d MiB of definitions the pins file keeps, %d MiB of one server's, or the file was edited), so all of what is offered is shown:\n", pins.MaxKept>>20, pins.MaxKeptPerServer>>20)
		}
		if err := printDefinitionDiff(w, pinned, seen); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "approve what is offered: mcp-secure tools approve %s@%s\n", name, short(e.Seen))
	return nil
}

// printDefinitionDiff prints the line diff of two definitions' canonical
// documents (old may be nil: all of now is new), indented JSON with keys
// sorted, as their hashes are taken: "-" lines are the pinned one's, "+"
// the one offered, with three lines of context.
func printDefinitionDiff(w io.Writer, old, now *pins.Definition) error {
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

// maxIndented is the most of a definition's document shown indented: a
// schema nested deep, indented, takes its depth times its size.
const maxIndented = 1 << 20

// definitionLines is d's canonical document as indented JSON lines (each
// member on one compact line when indented it would pass maxIndented);
// none for nil.
func definitionLines(d *pins.Definition) ([]string, error) {
	if d == nil {
		return nil, nil
	}
	doc, err := pins.Canonical(*d)
	if err != nil {
		return nil, err
	}
	text, err := encodeJSON(doc, true)
	if err != nil {
		return nil, err
	}
	if len(text) > maxIndented {
		var b strings.Builder
		b.WriteString("{\n")
		keys := slices.Sorted(maps.Keys(doc))
		for i, k := range keys {
			member, err := encodeJSON(map[string]any{k: doc[k]}, false)
			if err != nil {
				return nil, err
			}
			b.WriteString("  " + strings.TrimSuffix(strings.TrimPrefix(member, "{"), "}"))
			if i < len(keys)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString("}")
		text = b.String()
	}
	return strings.Split(visible(text), "\n"), nil
}

// encodeJSON is v as JSON, indented or compact, with <, > and & as
// written and no newline at the end.
func encodeJSON(v any, indent bool) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// visible escapes, as JSON does, every character of s a terminal would
// not show as itself (bidirectional overrides, zero-width and other
// format characters, variation selectors, the other default-ignorable
// characters such as the Hangul fillers, the blank Braille pattern; JSON
// escapes control characters already), so that a definition cannot hide
// or reorder what the operator reads. Outside strings, indented JSON
// holds none.
func visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == ' ' || unicode.IsPrint(r) && !hidden(r) {
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

// hidden reports whether r, though unicode calls it printable, shows as
// nothing or nearly nothing.
func hidden(r rune) bool {
	return r == '\u2800' || unicode.In(r, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
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
