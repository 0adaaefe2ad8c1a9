package bugtracker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The statuses of a bug. open → in_progress → resolved (fixed, awaiting
// confirmation) → closed; any of them may be set again with update_bug.
const (
	StatusOpen       = "open"
	StatusInProgress = "in_progress"
	StatusResolved   = "resolved"
	StatusClosed     = "closed"
)

// Statuses lists the statuses in workflow order.
var Statuses = []string{StatusOpen, StatusInProgress, StatusResolved, StatusClosed}

// Priorities lists the priorities, lowest first.
var Priorities = []string{"low", "medium", "high", "critical"}

// DefaultPriority is a new bug's priority when none is given.
const DefaultPriority = "medium"

// inverse maps each relationship to the one recorded on the other bug.
var inverse = map[string]string{
	"duplicate_of":  "duplicated_by",
	"duplicated_by": "duplicate_of",
	"related_to":    "related_to",
	"blocks":        "blocked_by",
	"blocked_by":    "blocks",
}

// Relationships lists the relationships between two bugs.
var Relationships = []string{"duplicate_of", "duplicated_by", "related_to", "blocks", "blocked_by"}

// Bug is a bug with its links and, from get_bug, its history.
type Bug struct {
	ID          string         `json:"id"`
	ProjectPath string         `json:"project_path"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Status      string         `json:"status"`
	Priority    string         `json:"priority"`
	Tags        []string       `json:"tags"`
	RelatedBugs []Link         `json:"related_bugs"`
	Resolution  string         `json:"resolution"`
	CreatedAt   string         `json:"created_at"`
	UpdatedAt   string         `json:"updated_at"`
	History     []HistoryEntry `json:"history"`
}

// Summary is a bug as listed by list_bugs and search_bugs_global.
type Summary struct {
	ID          string   `json:"id"`
	ProjectPath string   `json:"project_path"`
	Title       string   `json:"title"`
	Status      string   `json:"status"`
	Priority    string   `json:"priority"`
	Tags        []string `json:"tags"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
}

// Link relates a bug to another bug of the same project.
type Link struct {
	BugID        string `json:"bug_id"`
	Relationship string `json:"relationship"`
}

// HistoryEntry records one update: each changed field with its old and
// new value, and the note given with it.
type HistoryEntry struct {
	Timestamp string            `json:"timestamp"`
	Changes   map[string][2]any `json:"changes"`
	Note      string            `json:"note"`
}

// formatID spells a bug's sequence number: BUG-001, ..., BUG-999,
// BUG-1000.
func formatID(seq int64) string { return fmt.Sprintf("BUG-%03d", seq) }

// parseID reads a bug id ("BUG-7", "BUG-007" and "bug-007" are the same
// bug) into its sequence number.
func parseID(id string) (int64, error) {
	id = strings.TrimSpace(id)
	digits, ok := strings.CutPrefix(strings.ToUpper(id), "BUG-")
	n, err := strconv.ParseInt(digits, 10, 64)
	if !ok || err != nil || n < 1 || strings.HasPrefix(digits, "+") {
		return 0, fmt.Errorf("%w: bug_id %q is not a bug id like BUG-001", ErrBadArgument, id)
	}
	return n, nil
}

// Limits on free text.
const (
	maxTitle = 200
	maxText  = 10000 // description, note, resolution
	maxTag   = 50
	maxTags  = 20
)

// normalizeTags trims and lower-cases tags, drops empty ones and
// duplicates, and sorts them.
func normalizeTags(tags []string) ([]string, error) {
	if len(tags) > maxTags {
		return nil, fmt.Errorf("%w: at most %d tags", ErrBadArgument, maxTags)
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		if len([]rune(t)) > maxTag {
			return nil, fmt.Errorf("%w: tag %q is longer than %d characters", ErrBadArgument, t, maxTag)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func oneOf(field, v string, allowed []string) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%w: %s %q is not one of %s", ErrBadArgument, field, v, strings.Join(allowed, ", "))
}
