package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/guard"
)

func policyReplayCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy replay", "AUDIT.log... [--policy NEW] [--limit N]", `
Re-decides the recorded decisions of audit logs (tool calls, name lookups,
connections and file accesses) under a policy, and reports every decision
it would change (allow -> deny, deny -> allow), with counts per tool and
reason: what would this change have broken yesterday? Inputs are rebuilt
by the server's own input builders from what the records hold. A record
whose input was redacted, truncated, masked or left out (audit.include) is
decided on what was recorded and its changes are listed apart, with the
redacted fields named: the original values are not in the log and are
never guessed. Commands are not replayed: their decision rests on facts
about the executable (owner, inode, who could write it) the log does not
keep. When the policy reads input.session, each session's history is
rebuilt from the records in the order written, as the server built it; a
call whose history the log does not hold whole (the log read does not
begin a new log, a record is missing, calls of the session overlapped)
is counted as not replayable rather than guessed. Give a log's files
oldest first. Exit 0 when nothing would change, 1 when something would, 2 on an
error.`, stdout)
	var file string
	var limit int
	c.fs.StringVar(&file, "policy", "", "the policy to decide under (`file`); default: the user's policy, else the embedded one")
	c.fs.IntVar(&limit, "limit", 0, "list at most `n` changes of each kind (0: all); the counts are always complete")
	files, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	chk, err := checkPolicy(ctx, file)
	if err != nil {
		return err
	}
	r := &replayer{eng: chk.eng, tools: chk.tools, session: usesSession(chk.cfg.UserModules)}
	start := time.Now()
	rep, err := r.replay(ctx, files)
	if err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("policy replay: %w", err)}
	}
	rep.elapsed = time.Since(start)
	rep.policy = chk.pol.Source()
	if err := rep.write(stdout, limit); err != nil {
		return err
	}
	if rep.changed() > 0 {
		return &exitErr{code: exitError, err: errDenied, quiet: true}
	}
	return nil
}

// replayRecord is the part of an audit record replay reads.
type replayRecord struct {
	Kind      string          `json:"kind"`
	Path      string          `json:"path"`
	Tool      string          `json:"tool"`
	RequestID string          `json:"request_id"`
	Client    *audit.Client   `json:"client"`
	Result    string          `json:"result"`
	Reasons   []string        `json:"reasons"`
	Input     json.RawMessage `json:"input"`
	Erased    []string        `json:"erased"`
	Masked    []string        `json:"masked"`
	MaskError string          `json:"mask_error"`
	Timestamp string          `json:"timestamp"`
}

// change is one decision that would go the other way.
type change struct {
	file     string
	line     int
	at       string
	kind     string
	tool     string
	target   string
	was      bool
	now      bool
	reasons  []string // the new decision's when it denies, the old one's when it allowed
	redacted []string // JSON pointers into the record whose values are not the originals
}

type replayer struct {
	eng   *engine.Engine
	tools []string
	// session: the policy may read input.session, which is rebuilt from
	// the records (replay_session.go).
	session  bool
	sessions *sessionTracker // read's, in the order of the records
	// memo holds the decision of each input already decided: logs repeat
	// inputs (the same lookups, paths, calls), and a decision depends on
	// its input and the policy alone.
	memo sync.Map // point + input text -> memoDecision
}

type memoDecision struct {
	d   engine.Decision
	err error
}

// decideOnce decides input at point, or recalls the decision of an equal
// input.
func (r *replayer) decideOnce(ctx context.Context, point engine.Point, input ast.Value) (engine.Decision, error) {
	key := string(point) + "\x00" + input.String()
	if m, ok := r.memo.Load(key); ok {
		md := m.(memoDecision)
		return md.d, md.err
	}
	d, err := r.eng.Decide(ctx, point, input)
	r.memo.Store(key, memoDecision{d, err})
	return d, err
}

// job is one line to decide.
type job struct {
	file string
	line int
	raw  []byte
	// history is the session's history when a tool call arrived;
	// unknown says why it cannot be known (the call is not replayed).
	history *engine.SessionHistory
	unknown string
}

// outcome is what deciding one line found.
type outcome struct {
	skip   string // why it was not replayed; "" when it was
	change *change
	redact bool // decided on a redacted input
}

func (r *replayer) replay(ctx context.Context, files []string) (*replayReport, error) {
	rep := &replayReport{skipped: map[string]int{}, files: len(files)}
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan []job, workers*2)
	results := make(chan []outcome, workers*2)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range jobs {
				out := make([]outcome, len(batch))
				for i, j := range batch {
					out[i] = r.decide(ctx, j)
				}
				results <- out
			}
		}()
	}
	var collected [][]outcome
	done := make(chan struct{})
	go func() {
		for out := range results {
			collected = append(collected, out)
		}
		close(done)
	}()
	if r.session {
		r.sessions = newSessionTracker()
		if err := r.readSummaries(files); err != nil {
			return nil, err
		}
	}
	readErr := r.read(files, jobs)
	close(jobs)
	wg.Wait()
	close(results)
	<-done
	if readErr != nil {
		return nil, readErr
	}
	for _, batch := range collected {
		for _, o := range batch {
			rep.add(o)
		}
	}
	slices.SortFunc(rep.changes, func(a, b change) int {
		return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.line, b.line))
	})
	return rep, nil
}

// read sends the lines of files in batches.
func (r *replayer) read(files []string, jobs chan<- []job) error {
	const batchSize = 256
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
		batch := make([]job, 0, batchSize)
		line := 0
		for sc.Scan() {
			line++
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			j := job{file: name, line: line, raw: bytes.Clone(sc.Bytes())}
			if r.sessions != nil {
				j.history, j.unknown = r.sessions.history(j.raw)
			}
			batch = append(batch, j)
			if len(batch) == batchSize {
				jobs <- batch
				batch = make([]job, 0, batchSize)
			}
		}
		if len(batch) > 0 {
			jobs <- batch
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line+1, err)
		}
	}
	return nil
}

// readSummaries reads the audit_summary records of files ahead, for the
// session histories (sessionTracker.summary).
func (r *replayer) readSummaries(files []string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
		for sc.Scan() {
			r.sessions.summary(sc.Bytes())
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// decide rebuilds one record's input and decides it again.
func (r *replayer) decide(ctx context.Context, j job) outcome {
	var rec replayRecord
	if err := json.Unmarshal(j.raw, &rec); err != nil {
		return outcome{skip: "not a JSON record"}
	}
	if rec.Result != audit.ResultAllow && rec.Result != audit.ResultDeny && rec.Result != audit.ResultError {
		return outcome{skip: rec.Kind + " (not a decision)"}
	}
	var in map[string]any
	if len(rec.Input) > 0 {
		dec := json.NewDecoder(bytes.NewReader(rec.Input))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			return outcome{skip: rec.Kind + " (input is not an object)"}
		}
	}
	redacted := redactedPointers(rec, in)
	var point engine.Point
	var input ast.Value
	var target string
	switch rec.Kind {
	case audit.KindToolCall:
		if j.unknown != "" {
			return outcome{skip: "tool_call (not replayable: uses session history; " + j.unknown + ")"}
		}
		point, target = engine.Tools, rec.Tool
		ti := engine.ToolInput{Tool: rec.Tool, Registered: slices.Contains(r.tools, rec.Tool), RequestID: rec.RequestID, Session: j.history}
		redacted = append(redacted, redactedHistory(j.history)...)
		if s, ok := in["tool"].(string); ok {
			ti.Tool, target = s, s
			ti.Registered = slices.Contains(r.tools, s)
		}
		if rec.Client != nil {
			ti.Client = engine.Client{Name: rec.Client.Name, Version: rec.Client.Version}
		}
		ti.ProtocolVersion, _ = in["protocol_version"].(string)
		if args, ok := in["arguments"]; ok {
			v, err := ast.InterfaceToValue(args)
			if err != nil {
				return outcome{skip: "tool_call (arguments unreadable)"}
			}
			ti.Arguments = v
		} else if in != nil {
			redacted = append(redacted, "/input/arguments (not recorded: audit.include)")
		}
		input = ti.Value()
	case audit.KindNetwork:
		phase, _ := in["phase"].(string)
		if phase == "" {
			return outcome{skip: "network (refused before the policy was asked)"}
		}
		point = engine.Network
		ni := engine.NetworkInput{Phase: phase, Tool: rec.Tool}
		ni.Host, _ = in["host"].(string)
		ni.Network, _ = in["network"].(string)
		if n, ok := in["port"].(json.Number); ok {
			p, _ := strconv.Atoi(n.String())
			ni.Port = p
		}
		if ip, ok := in["ip"].(string); ok {
			ni.IP = ip
			if a, err := netip.ParseAddr(ip); err == nil {
				if e, ok := guard.EmbeddedIPv4(a); ok {
					ni.EmbeddedIPv4 = e.String()
				}
			}
		}
		target = strings.TrimSpace(fmt.Sprintf("%s %s %s:%d", phase, ni.Host, ni.IP, ni.Port))
		input = ni.Value()
	case audit.KindFilesystem:
		path, _ := in["path"].(string)
		op, _ := in["operation"].(string)
		if path == "" || op == "" {
			return outcome{skip: "filesystem (no path recorded)"}
		}
		point, target = engine.Filesystem, op+" "+path
		input = engine.FileInput{Path: path, Operation: op, Tool: rec.Tool, RequestID: rec.RequestID}.Value()
	case audit.KindCommand:
		return outcome{skip: "command (the executable's owner and inode are not recorded)"}
	default:
		return outcome{skip: rec.Kind + " (not a policy decision)"}
	}
	var d engine.Decision
	var err error
	if j.history != nil {
		// An input with a session history seldom repeats: keying the
		// memo on its text would cost more than it saves.
		d, err = r.eng.Decide(ctx, point, input)
	} else {
		d, err = r.decideOnce(ctx, point, input)
	}
	now := d.Allow && err == nil
	was := rec.Result == audit.ResultAllow
	o := outcome{redact: len(redacted) > 0}
	if now != was {
		reasons := d.Reasons
		if now {
			reasons = rec.Reasons
		}
		tool := rec.Tool
		if point == engine.Tools {
			tool = target
		}
		o.change = &change{file: j.file, line: j.line, at: rec.Timestamp, kind: rec.Kind, tool: tool, target: target,
			was: was, now: now, reasons: reasons, redacted: redacted}
	}
	return o
}

// redactedPointers names the parts of a record's input that are not the
// values the policy saw: redaction markers, truncated values, masked or
// erased fields.
func redactedPointers(rec replayRecord, in map[string]any) []string {
	var out []string
	for _, p := range rec.Erased {
		out = append(out, p+" (erased by a mask rule)")
	}
	for _, p := range rec.Masked {
		out = append(out, p+" (masked)")
	}
	if rec.MaskError != "" && len(rec.Erased) == 0 {
		out = append(out, "/input (erased: mask rules failed)")
	}
	if strings.Contains(rec.Tool, "[REDACTED") {
		out = append(out, "/tool (redacted)")
	}
	if rec.Client != nil && strings.Contains(rec.Client.Name+rec.Client.Version, "[REDACTED") {
		out = append(out, "/client (redacted)")
	}
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch x := v.(type) {
		case string:
			if strings.Contains(x, "[REDACTED") {
				out = append(out, ptr+" (redacted)")
			}
		case map[string]any:
			if t, ok := x["truncated"].(bool); ok && t && x["sha256"] != nil {
				out = append(out, ptr+" (truncated)")
				return
			}
			for _, k := range slices.Sorted(maps.Keys(x)) {
				p := ptr + "/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
				if strings.Contains(k, "[REDACTED") {
					out = append(out, p+" (key redacted)")
				}
				walk(p, x[k])
			}
		case []any:
			for i, e := range x {
				walk(ptr+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("/input", in)
	return out
}

// replayReport is what replay found.
type replayReport struct {
	policy   string
	files    int
	replayed int
	redacted int // replayed on a redacted input
	skipped  map[string]int
	changes  []change
	elapsed  time.Duration
}

func (rep *replayReport) add(o outcome) {
	if o.skip != "" {
		rep.skipped[o.skip]++
		return
	}
	rep.replayed++
	if o.redact {
		rep.redacted++
	}
	if o.change != nil {
		rep.changes = append(rep.changes, *o.change)
	}
}

func (rep *replayReport) changed() int { return len(rep.changes) }

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func (rep *replayReport) write(w io.Writer, limit int) error {
	var b strings.Builder
	rate := float64(rep.replayed) / max(rep.elapsed.Seconds(), 1e-9)
	fmt.Fprintf(&b, "replayed %d decisions from %d files under %s in %s (%.0f decisions/s)\n",
		rep.replayed, rep.files, rep.policy, rep.elapsed.Round(time.Millisecond), rate)
	var toDeny, toAllow int
	var sure, unsure []change
	for _, c := range rep.changes {
		if c.now {
			toAllow++
		} else {
			toDeny++
		}
		if len(c.redacted) > 0 {
			unsure = append(unsure, c)
		} else {
			sure = append(sure, c)
		}
	}
	fmt.Fprintf(&b, "would change: %d (allow -> deny %d, deny -> allow %d); unchanged: %d\n",
		len(rep.changes), toDeny, toAllow, rep.replayed-len(rep.changes))
	if rep.redacted > 0 {
		fmt.Fprintf(&b, "decided on redacted input: %d (the log does not hold the original values; %d of them would change)\n", rep.redacted, len(unsure))
	}
	for _, why := range slices.Sorted(maps.Keys(rep.skipped)) {
		fmt.Fprintf(&b, "not replayed: %d %s\n", rep.skipped[why], why)
	}
	if len(rep.changes) > 0 {
		b.WriteString("\nper tool and reason:\n")
		type key struct{ dir, tool, reason string }
		counts := map[key]int{}
		for _, c := range rep.changes {
			dir := verdict(c.was) + " -> " + verdict(c.now)
			reason := strings.Join(c.reasons, "; ")
			if c.now {
				reason = "no longer denied: " + reason
			}
			counts[key{dir, c.tool, reason}]++
		}
		keys := slices.SortedFunc(maps.Keys(counts), func(a, b key) int {
			return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a.dir, b.dir), cmp.Compare(a.tool, b.tool), cmp.Compare(a.reason, b.reason))
		})
		for _, k := range keys {
			tool := k.tool
			if tool == "" {
				tool = "(no tool)"
			}
			fmt.Fprintf(&b, "  %6d  %-14s %-20s %s\n", counts[k], k.dir, tool, k.reason)
		}
	}
	list := func(title string, cs []change) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		for i, c := range cs {
			if limit > 0 && i == limit {
				fmt.Fprintf(&b, "  ... and %d more (--limit)\n", len(cs)-limit)
				break
			}
			fmt.Fprintf(&b, "  %s:%d %s %s %s: %s -> %s", c.file, c.line, c.at, c.kind, c.target, verdict(c.was), verdict(c.now))
			if !c.now && len(c.reasons) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(c.reasons, "; "))
			}
			b.WriteByte('\n')
			if len(c.redacted) > 0 {
				fmt.Fprintf(&b, "      not the original input: %s\n", strings.Join(c.redacted, ", "))
			}
		}
	}
	list("changes", sure)
	list("changes on redacted input (decided on what the log holds)", unsure)
	_, err := io.WriteString(w, b.String())
	return err
}
