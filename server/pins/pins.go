package pins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FileName is the state file's name in the audit log's directory.
const FileName = "tool-pins.json"

// PathFor is the state file of the audit log logFile.
func PathFor(logFile string) string { return filepath.Join(filepath.Dir(logFile), FileName) }

// ErrUnknownTool is returned by Approve for a tool never seen.
var ErrUnknownTool = errors.New("pins: no definition of this tool has been seen")

// Definition is what a tool tells the model; the fields of its hash.
type Definition struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Title        string          `json:"title,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
	// Server names the upstream server offering the tool (not hashed):
	// a new entry records it, and its pending entries are counted.
	Server string `json:"-"`
	// OwnName, when set, is the name the upstream gives the tool, which
	// its hash covers, and Name the name it is offered as (a prefix
	// added).
	OwnName string `json:"own_name,omitempty"`
}

// MaxKept bounds the file: a definition (pinned, or offered and not
// pinned) is kept beside its hash only while the file stays within it;
// past it, the hash alone is kept (it still pins, and still denies until
// approved), so that an upstream offering many large tools cannot grow
// the file without end.
const MaxKept = 8 << 20

// MaxKeptPerServer bounds, the same way, the definitions kept of one
// upstream server, so that one server's large tools leave room for the
// others'.
const MaxKeptPerServer = MaxKept / 4

// size is at least how many bytes d takes in the file: JSON writes a
// character as up to six bytes (\u003c), and compacts the raw members.
func (d *Definition) size() int {
	if d == nil {
		return 0
	}
	n := 160 // the member names, quotes and commas
	for _, s := range []string{d.Name, d.OwnName, d.Description, d.Title} {
		n += jsonLen(s)
	}
	for _, raw := range []json.RawMessage{d.InputSchema, d.OutputSchema, d.Annotations} {
		n += jsonLen(string(raw))
	}
	return n
}

// jsonLen is at least the length of s (valid UTF-8, as JSON decoding
// leaves every string) in a JSON document.
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == '"' || c == '\\':
			n += 2
		default:
			n++
		}
	}
	return n
}

// Matches reports whether d, as the store keeps it, is the definition of
// hash h.
func Matches(d Definition, h string) bool {
	if d.OwnName != "" {
		d.Name = d.OwnName
	}
	got, err := Hash(d)
	return err == nil && got == h
}

// MaxPending bounds the pending entries (never pinned) of one server: a
// server that offers new tool names over and over cannot grow the file
// without end. Past it, Observe of another new name fails with
// ErrTooManyPending and records nothing.
const MaxPending = 64

// ErrTooManyPending: see MaxPending.
var ErrTooManyPending = fmt.Errorf("pins: more than %d tools of this server wait for approval", MaxPending)

// Canonical is the document d's hash is taken of: its hashed fields,
// schemas decoded. encoding/json writes its keys sorted.
func Canonical(d Definition) (map[string]any, error) {
	doc := map[string]any{"name": d.Name, "description": d.Description}
	if d.Title != "" {
		doc["title"] = d.Title
	}
	for k, raw := range map[string]json.RawMessage{"inputSchema": d.InputSchema, "outputSchema": d.OutputSchema, "annotations": d.Annotations} {
		if len(raw) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pins: %s of %q: %w", k, d.Name, err)
		}
		doc[k] = v
	}
	return doc, nil
}

// Hash is the hex SHA-256 of d's canonical JSON.
func Hash(d Definition) (string, error) {
	doc, err := Canonical(d)
	if err != nil {
		return "", err
	}
	// encoding/json writes map keys sorted: the encoding is canonical.
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("pins: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Entry is one tool's state. A tool first seen after its server's
// initial listing is pending: Pinned is empty until it is approved.
type Entry struct {
	Pinned   string    `json:"pinned"`
	PinnedAt time.Time `json:"pinned_at,omitzero"`
	// PinnedDefinition is the definition pinned, kept so that a change
	// can be shown against it (nil for a pin made before definitions
	// were kept, until its server lists it again unchanged).
	PinnedDefinition *Definition `json:"pinned_definition,omitempty"`
	// Seen is the hash last seen, with its definition, when it differs
	// from Pinned.
	Seen           string      `json:"seen,omitempty"`
	SeenAt         time.Time   `json:"seen_at,omitzero"`
	SeenDefinition *Definition `json:"seen_definition,omitempty"`
	// Server is the upstream server that offered the tool first, when
	// known.
	Server string `json:"server,omitempty"`
}

type state struct {
	Version int               `json:"version"`
	Tools   map[string]*Entry `json:"tools"`
	// Servers records when each upstream server was first listed: a
	// server listed before gets no trust on first use (see ServerSeen).
	Servers map[string]time.Time `json:"servers,omitempty"`
}

// Store is the state file of one server.
type Store struct {
	path string

	mu      sync.Mutex
	tools   map[string]*Entry
	servers map[string]time.Time
	mod     time.Time
	size    int64
	raw     []byte    // the file's bytes tools was read from
	checked time.Time // when the file was last looked at
	// lookErr is what that look found wrong: it holds, as the look does,
	// until the next one (an unreadable file is not the last good one).
	lookErr error
	// onChange hears of each change of what Pinned answers, before any
	// ask sees it (see OnChange).
	onChange func()
}

// OnChange has f called, with the store locked, before any change of
// what Pinned answers can be seen: other pins read, a write of the
// store's own, a file found unreadable or readable again. Whoever keeps
// what followed from Pinned's answers learns that it may be stale. f
// must not call the store.
func (s *Store) OnChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = f
}

// changing tells onChange. Called with s.mu held.
func (s *Store) changing() {
	if s.onChange != nil {
		s.onChange()
	}
}

// replaceFile puts the new file in place (tests make it fail).
var replaceFile = os.Rename

// recheck is how long a look at the file holds for Pinned: a listing asks
// for every pinned tool at once, and one look at the file serves them
// all. It is far shorter than any approval takes (a process started and
// the file written).
var recheck = time.Millisecond

// Open reads the state file at path; a missing file is an empty store.
func Open(path string) (*Store, error) {
	s := &Store{path: path, tools: map[string]*Entry{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// reload looks at the file (see look) unless it did less than recheck
// ago, and returns what that look found wrong. Called with s.mu held.
func (s *Store) reload(force bool) error {
	now := time.Now()
	if !force && now.Sub(s.checked) < recheck {
		return s.lookErr
	}
	s.checked = now
	wasErr := s.lookErr != nil
	replaced, err := s.look(force)
	if replaced || wasErr != (err != nil) {
		s.changing()
	}
	s.lookErr = err
	return err
}

// look reads the file when it changed since the last read (always when
// force), and reports whether it replaced the entries. Called with s.mu
// held.
func (s *Store) look(force bool) (replaced bool, err error) {
	st, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		if len(s.tools) == 0 && s.size == 0 && s.mod.IsZero() {
			return false, nil
		}
		s.tools, s.servers, s.mod, s.size, s.raw = map[string]*Entry{}, nil, time.Time{}, 0, nil
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("pins: %w", err)
	}
	if !force && st.ModTime().Equal(s.mod) && st.Size() == s.size {
		return false, nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, fmt.Errorf("pins: %w", err)
	}
	if s.raw != nil && bytes.Equal(data, s.raw) {
		s.mod, s.size = st.ModTime(), st.Size() // the same pins
		return false, nil
	}
	var doc state
	if err := json.Unmarshal(data, &doc); err != nil {
		return false, fmt.Errorf("pins: %s: %w", s.path, err)
	}
	if doc.Tools == nil {
		doc.Tools = map[string]*Entry{}
	}
	s.tools, s.servers, s.mod, s.size, s.raw = doc.Tools, doc.Servers, st.ModTime(), st.Size(), data
	return true, nil
}

// Outcome is what Observe found.
type Outcome int

// Outcomes of Observe.
const (
	Same    Outcome = iota // the pinned definition
	Pinned                 // first seen: pinned now
	Changed                // differs from the pin
	Pending                // a tool not pinned yet: awaits approval
)

func (o Outcome) String() string {
	return [...]string{"same", "pinned", "changed", "pending"}[o]
}

// Observe records that tool is offered with definition d of hash h: a new
// tool is pinned (trust on first use), a changed one remembered as seen
// (for Approve).
func (s *Store) Observe(d Definition, h string) (Outcome, error) {
	return s.observe(d, h, true)
}

// ObservePending is Observe for a tool offered after its server's
// initial listing: a tool never seen is not pinned but left pending (its
// definition remembered as seen) until Approve pins it.
func (s *Store) ObservePending(d Definition, h string) (Outcome, error) {
	return s.observe(d, h, false)
}

func (s *Store) observe(d Definition, h string, trust bool) (Outcome, error) {
	res, err := s.ObserveAll("", []Observation{{Def: d, Hash: h, Trust: trust}}, nil)
	if err != nil {
		return 0, err
	}
	return res[0].Outcome, res[0].Err
}

// Observation is one definition of a listing, for ObserveAll.
type Observation struct {
	Def  Definition
	Hash string
	// Trust pins a tool never seen (as Observe does); without it, such a
	// tool is left pending (as ObservePending does).
	Trust bool
}

// Observed is what ObserveAll found of one observation.
type Observed struct {
	Outcome Outcome
	// Err is ErrTooManyPending when the tool was new and could not be
	// left pending: nothing of it is recorded.
	Err error
	// Pinned is the tool's pin before (empty for a tool never pinned).
	Pinned string
}

// ObserveAll observes the definitions of one listing, in order, each as
// Observe or ObservePending would (as its Trust says), under one lock of
// the file, with one read and at most one write of it. When server is not
// empty, obs is that server's whole listing: its pending entries (never
// pinned) that the listing no longer names are dropped first, so that
// tools it stopped offering neither wait for approval nor count against
// MaxPending; its pins stay, offered or not. record, when not nil, is
// called with what was found, under the lock and before the file is
// written: when it fails, nothing is written and its error is returned,
// so that no pin is ever kept without what record makes of it (the audit
// records). err is the store's or record's; then nothing was recorded.
func (s *Store) ObserveAll(server string, obs []Observation, record func([]Observed) error) (res []Observed, err error) {
	res = make([]Observed, len(obs))
	var recErr error
	err = s.update(func(tools map[string]*Entry) bool {
		// Observed on a copy, so that a failed record leaves the entries
		// as the file has them.
		work := make(map[string]*Entry, len(tools)+len(obs))
		for name, e := range tools {
			c := *e
			work[name] = &c
		}
		changed := false
		if server != "" {
			named := make(map[string]bool, len(obs))
			for _, o := range obs {
				named[o.Def.Name] = true
			}
			for name, e := range work {
				if e.Pinned == "" && e.Server == server && !named[name] {
					delete(work, name)
					changed = true
				}
			}
		}
		now := time.Now().UTC()
		kept := len(s.raw) // the file as read, under the lock
		ours := 0          // what the file keeps of this server's
		for _, e := range work {
			if e.Server == server {
				ours += e.PinnedDefinition.size() + e.SeenDefinition.size()
			}
		}
		// A definition is kept while the file stays within MaxKept, and
		// this server's within MaxKeptPerServer. (That it hashes to its
		// pin is checked where it is shown: tools diff.)
		keep := func(d *Definition) bool {
			n := d.size()
			if kept+n > MaxKept || ours+n > MaxKeptPerServer {
				return false
			}
			kept, ours = kept+n, ours+n
			return true
		}
		for i, o := range obs {
			if e, ok := work[o.Def.Name]; ok {
				res[i].Pinned = e.Pinned
			}
			var did, full bool
			res[i].Outcome, did, full = observeOne(work, o.Def, o.Hash, o.Trust, now, keep)
			if full {
				res[i].Err = ErrTooManyPending
			}
			changed = changed || did
		}
		if record != nil {
			if recErr = record(res); recErr != nil {
				return false
			}
		}
		if changed {
			clear(tools)
			maps.Copy(tools, work)
		}
		return changed
	})
	if err == nil {
		err = recErr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// observeOne observes definition d, of hash h, in tools: its outcome,
// whether tools changed, and full when d is a new tool that cannot be
// left pending (MaxPending; nothing recorded). A definition is kept beside
// its hash when keep allows (MaxKept).
func observeOne(tools map[string]*Entry, d Definition, h string, trust bool, now time.Time, keep func(*Definition) bool) (out Outcome, changed, full bool) {
	e, ok := tools[d.Name]
	switch {
	case !ok && trust:
		e := &Entry{Pinned: h, PinnedAt: now, Server: d.Server}
		if def := d; keep(&def) {
			e.PinnedDefinition = &def
		}
		tools[d.Name] = e
		return Pinned, true, false
	case !ok:
		if d.Server != "" && pendingOf(tools, d.Server) >= MaxPending {
			return Pending, false, true
		}
		e := &Entry{Seen: h, SeenAt: now, Server: d.Server}
		if def := d; keep(&def) {
			e.SeenDefinition = &def
		}
		tools[d.Name] = e
		return Pending, true, false
	case e.Pinned == "":
		// Pending stays pending, whatever the listing: only an
		// approval pins it.
		if e.Seen == h {
			return Pending, false, false
		}
		e.Seen, e.SeenAt, e.SeenDefinition = h, now, nil
		if def := d; keep(&def) {
			e.SeenDefinition = &def
		}
		return Pending, true, false
	case e.Pinned == h:
		// A pin kept without its definition (made by an older version,
		// or past MaxKept then), or with one an older version kept
		// without the name its hash covers, gets it.
		filled := false
		if def := d; (e.PinnedDefinition == nil || e.PinnedDefinition.OwnName != d.OwnName) && keep(&def) {
			e.PinnedDefinition, filled = &def, true
		}
		if e.Seen == "" {
			return Same, filled, false
		}
		e.Seen, e.SeenAt, e.SeenDefinition = "", time.Time{}, nil
		return Same, true, false
	default:
		if e.Seen == h {
			return Changed, false, false
		}
		e.Seen, e.SeenAt, e.SeenDefinition = h, now, nil
		if def := d; keep(&def) {
			e.SeenDefinition = &def
		}
		return Changed, true, false
	}
}

// pendingOf counts the pending entries of server.
func pendingOf(tools map[string]*Entry, server string) int {
	n := 0
	for _, e := range tools {
		if e.Pinned == "" && e.Server == server {
			n++
		}
	}
	return n
}

// ServerSeen reports whether server, whose tools are offered under
// prefix, was listed before: its tools first seen now are not trusted
// on first use, since an upstream that renames a pinned tool, or adds
// one, at a start of the server is doing so past its pins. A server is
// listed before when MarkServer recorded it, when an entry names it, or
// when a tool under its (non-empty) prefix holds an entry that names no
// server: files written before servers were recorded know them only so.
func (s *Store) ServerSeen(server, prefix string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(false); err != nil {
		return false, err
	}
	if _, ok := s.servers[server]; ok {
		return true, nil
	}
	for name, e := range s.tools {
		// An entry of another server is no sign, nor is every name under
		// an empty prefix.
		if e.Server == server || e.Server == "" && prefix != "" && strings.HasPrefix(name, prefix) {
			return true, nil
		}
	}
	return false, nil
}

// MarkServer records that server was listed.
func (s *Store) MarkServer(server string) error {
	return s.updateAll(func(_ map[string]*Entry, servers map[string]time.Time) bool {
		if _, ok := servers[server]; ok {
			return false
		}
		servers[server] = time.Now().UTC()
		return true
	})
}

// Pinned is tool's pinned hash ("" when it was never seen or is
// pending), read again from the file when the file changed (an approval
// by another process); the file is looked at once for the asks of one
// millisecond (recheck).
// A caller must treat an error as a changed definition: fail closed.
func (s *Store) Pinned(tool string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(false); err != nil {
		return "", err
	}
	if e, ok := s.tools[tool]; ok {
		return e.Pinned, nil
	}
	return "", nil
}

// Approve pins the definition of tool last seen and returns the old and
// the new hash (old is "" for a pending tool). A tool whose definition
// has not changed is approved as it is (old == new).
func (s *Store) Approve(tool string) (old, pinned string, err error) {
	return s.ApproveRecorded(tool, "", nil)
}

// ErrNotReviewed is returned by ApproveRecorded when the definition last
// seen is not the one the operator named.
var ErrNotReviewed = errors.New("pins: the definition last seen is not the one named")

// ApproveRecorded is Approve of the definition whose hash starts with
// want (any, when want is ""), with record, when not nil, called with the
// old and the new hash under the lock and before the file is written:
// when it fails, nothing is written and its error is returned, so that no
// approval is kept without its record. When the definition last seen is
// not want's, nothing is recorded or written and the error wraps
// ErrNotReviewed.
func (s *Store) ApproveRecorded(tool, want string, record func(old, pinned string) error) (old, pinned string, err error) {
	known := false
	var recErr error
	err = s.update(func(tools map[string]*Entry) bool {
		e, ok := tools[tool]
		if !ok {
			return false
		}
		known = true
		old, pinned = e.Pinned, e.Pinned
		if e.Seen != "" {
			pinned = e.Seen
		}
		if pinned == "" {
			return false
		}
		if !strings.HasPrefix(pinned, want) {
			recErr = fmt.Errorf("%w: %q is offered as %s now, not %s", ErrNotReviewed, tool, pinned, want)
			return false
		}
		if record != nil {
			if recErr = record(old, pinned); recErr != nil {
				return false
			}
		}
		if e.Seen == "" {
			return false
		}
		e.Pinned, e.PinnedAt, e.PinnedDefinition = e.Seen, time.Now().UTC(), nil
		if e.SeenDefinition != nil && Matches(*e.SeenDefinition, e.Seen) {
			e.PinnedDefinition = e.SeenDefinition
		}
		e.Seen, e.SeenAt, e.SeenDefinition = "", time.Time{}, nil
		return true
	})
	switch {
	case err == nil && (!known || pinned == ""):
		err = fmt.Errorf("%w: %q", ErrUnknownTool, tool)
	case err == nil:
		err = recErr
	}
	return old, pinned, err
}

// Entries returns a copy of every tool's state.
func (s *Store) Entries() (map[string]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(false); err != nil {
		return nil, err
	}
	out := make(map[string]Entry, len(s.tools))
	for k, e := range s.tools {
		out[k] = *e
	}
	return out, nil
}

// update reads the file under its lock, applies f to the entries and
// writes the result when f reports a change.
func (s *Store) update(f func(map[string]*Entry) bool) error {
	return s.updateAll(func(tools map[string]*Entry, _ map[string]time.Time) bool { return f(tools) })
}

// updateAll is update with the servers listed too.
func (s *Store) updateAll(f func(map[string]*Entry, map[string]time.Time) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	defer unlock()
	if err := s.reload(true); err != nil {
		return err
	}
	if s.servers == nil {
		s.servers = map[string]time.Time{}
	}
	if !f(s.tools, s.servers) {
		return nil
	}
	// f changed the entries in place: they are read from the file again,
	// whether or not it is written (a write that fails leaves them
	// marked stale, so the next look reads the file's).
	s.raw = nil
	s.mod, s.size = time.Time{}, -1
	s.changing()
	// Compact: indenting would multiply a deeply nested schema's bytes.
	data, err := json.Marshal(state{Version: 1, Tools: s.tools, Servers: s.servers})
	if err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("pins: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pins: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	if err := replaceFile(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	return s.reload(true)
}
