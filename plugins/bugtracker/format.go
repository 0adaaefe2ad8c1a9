package bugtracker

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The text of each result carries the same data as its structured
// content, laid out for reading.

func formatInit(r *InitResult) string {
	verb := "Bug tracking was already initialised for"
	if r.Created {
		verb = "Initialised bug tracking for"
	}
	return fmt.Sprintf("%s %s (project id %d, %d bug(s)).\nDatabase: %s (schema version %d)",
		verb, r.Path, r.ID, r.BugCount, r.Database, r.SchemaVersion)
}

// formatBug describes a bug; full adds its description, links and
// history.
func formatBug(b *Bug, full bool) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %s\n", b.ID, b.Title)
	fmt.Fprintf(&sb, "Project: %s\n", b.ProjectPath)
	fmt.Fprintf(&sb, "Status: %s · Priority: %s\n", b.Status, b.Priority)
	if len(b.Tags) > 0 {
		fmt.Fprintf(&sb, "Tags: %s\n", strings.Join(b.Tags, ", "))
	}
	if len(b.RelatedBugs) > 0 {
		parts := make([]string, len(b.RelatedBugs))
		for i, l := range b.RelatedBugs {
			parts[i] = l.Relationship + " " + l.BugID
		}
		fmt.Fprintf(&sb, "Related: %s\n", strings.Join(parts, ", "))
	}
	if b.Resolution != "" {
		fmt.Fprintf(&sb, "Resolution: %s\n", b.Resolution)
	}
	fmt.Fprintf(&sb, "Created: %s · Updated: %s\n", b.CreatedAt, b.UpdatedAt)
	if b.Description != "" {
		fmt.Fprintf(&sb, "\n%s\n", b.Description)
	}
	if full {
		if len(b.History) == 0 {
			sb.WriteString("\nHistory: none\n")
		} else {
			fmt.Fprintf(&sb, "\nHistory (%d):\n", len(b.History))
			for _, h := range b.History {
				fmt.Fprintf(&sb, "- %s", h.Timestamp)
				if c := formatChanges(h.Changes); c != "" {
					sb.WriteString(" " + c)
				}
				if h.Note != "" {
					fmt.Fprintf(&sb, " — note: %s", h.Note)
				}
				sb.WriteString("\n")
			}
		}
	}
	return strings.TrimRight(sb.String(), "\n")
}

// formatChanges lists changed fields as "field: old → new", sorted.
func formatChanges(changes map[string][2]any) string {
	parts := make([]string, 0, len(changes))
	for _, k := range slices.Sorted(maps.Keys(changes)) {
		parts = append(parts, fmt.Sprintf("%s: %s → %s", k, formatValue(changes[k][0]), formatValue(changes[k][1])))
	}
	return strings.Join(parts, "; ")
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "(none)"
	case string:
		if x == "" {
			return "(none)"
		}
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if string(b) == "[]" {
		return "(none)"
	}
	return string(b)
}

func formatUpdated(tool string, u *Updated) string {
	var head string
	switch {
	case tool == "close_bug":
		head = "Closed " + u.Bug.ID + "."
	case !u.Recorded:
		head = "No change to " + u.Bug.ID + ": every value given is already set."
	case len(u.Changes) == 0:
		head = "Added a note to " + u.Bug.ID + "."
	default:
		head = "Updated " + u.Bug.ID + ": " + formatChanges(u.Changes) + "."
	}
	return head + "\n\n" + formatBug(u.Bug, true)
}

func formatPage(p *Page, f *filter) string {
	var sb strings.Builder
	where := "in all projects"
	if p.ProjectPath != "" {
		where = "in " + p.ProjectPath
	}
	var conds []string
	if f.query != "" {
		conds = append(conds, fmt.Sprintf("matching %q", f.query))
	}
	if f.status != "" {
		conds = append(conds, "status "+f.status)
	}
	if f.priority != "" {
		conds = append(conds, "priority "+f.priority)
	}
	if len(f.tags) > 0 {
		conds = append(conds, "tags "+strings.Join(f.tags, "+"))
	}
	filterText := ""
	if len(conds) > 0 {
		filterText = " (" + strings.Join(conds, ", ") + ")"
	}
	if p.Count == 0 {
		fmt.Fprintf(&sb, "No bugs %s%s.", where, filterText)
		return sb.String()
	}
	fmt.Fprintf(&sb, "%d bug(s) %s%s, newest first:\n", p.Count, where, filterText)
	for _, b := range p.Bugs {
		fmt.Fprintf(&sb, "\n%s [%s, %s] %s", b.ID, b.Status, b.Priority, b.Title)
		if len(b.Tags) > 0 {
			fmt.Fprintf(&sb, " (tags: %s)", strings.Join(b.Tags, ", "))
		}
		if p.ProjectPath == "" {
			fmt.Fprintf(&sb, "\n  project: %s", b.ProjectPath)
		}
	}
	if p.NextCursor != "" {
		fmt.Fprintf(&sb, "\n\nMore bugs: call again with cursor %q.", p.NextCursor)
	}
	return sb.String()
}
