package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/pins"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
)

// Hot reload: on SIGHUP, and when the policy file or a Rego module it
// names changes, the whole policy is read and checked again exactly as
// at start-up (checkPolicy). A policy that fails is rejected: a log line,
// a policy_reload audit record with the error, and the policy in force
// stays. One that passes is swapped in atomically (calls in flight
// finish under the snapshot they started with), audited with the old and
// new hashes, and sessions whose tool list changed are notified.
//
// What a reload cannot change: the audit section and the plugins'
// settings (the log is open, the plugins are built) keep their values in
// force, with a warning and the keys named in the record. The settings
// the guards and the command sandbox were built from (the filesystem
// roots, the commands section, the ports children may connect to, the
// call timeout, and, when commands may run, the server's own files the
// sandbox keeps out of reach) cannot be kept while the rest changes
// without the two disagreeing, so a policy that changes them is rejected
// whole: restart to apply it.

// DefaultReloadInterval is how often the policy's files are polled.
const DefaultReloadInterval = time.Second

type reloader struct {
	file     string // --policy as given: "" resolves as at start-up
	log      *slog.Logger
	audit    server.Auditor
	eng      *engine.Engine
	dry      *dryRunner
	limiter  *ratelimit.Limiter
	srv      *server.Server // notified of changes; may be nil
	interval time.Duration
	// load, when set, replaces reading the policy file (a bundle);
	// applied hears of each policy swapped in.
	load    func(context.Context) (*checked, error)
	applied func(*checked)
	// own hears of the ${VAR} of every policy read and checked (see
	// reload); may be nil.
	own ownEnvAdder

	mu     sync.Mutex // one reload at a time
	pol    *policy.Policy
	hash   string
	stamps map[string]fileStamp

	// pinsSeen is the last look at the tool pins file (pinsChanged);
	// only run's goroutine uses it.
	pinsSeen pinsStamp
}

// pinsStamp is what a look at the tool pins file compares. Every write
// of the file replaces it, so its time and size change.
type pinsStamp struct {
	path    string
	mtime   time.Time
	size    int64
	missing bool
}

// lookPins looks at the tool pins file of the policy in force.
func (r *reloader) lookPins() pinsStamp {
	r.mu.Lock()
	path := pins.PathFor(r.pol.Audit.LogFile)
	r.mu.Unlock()
	if st, err := os.Stat(path); err == nil {
		return pinsStamp{path: path, mtime: st.ModTime(), size: st.Size()}
	}
	return pinsStamp{path: path, missing: true}
}

// pinsChanged tells the server when the tool pins file changed since the
// last look (an approval by `mcp-secure tools approve`, say): what
// tools/list offers a session may have changed, and a session that was
// offered another list is sent notifications/tools/list_changed.
func (r *reloader) pinsChanged(ctx context.Context) {
	was, now := r.pinsSeen, r.lookPins()
	r.pinsSeen = now
	if was == now || r.srv == nil {
		return
	}
	// What was decided of the definitions before is stale: decided
	// again, against the file as it is now.
	plugin.DefinitionChanging()
	r.srv.OfferChanged(ctx, "tool pins changed")
}

// ownEnvAdder extends the server's own variables, which no child is
// given; *guard.Commands is one.
type ownEnvAdder interface {
	AddOwnEnv(names ...string)
}

// fileStamp is what polling compares: a change of any part is a change.
type fileStamp struct {
	mtime   time.Time
	size    int64
	sum     [sha256.Size]byte
	missing bool
}

func newReloader(chk *checked, file string, log *slog.Logger) (*reloader, error) {
	r := &reloader{file: file, log: log, eng: chk.eng, dry: &dryRunner{}, pol: chk.pol, interval: DefaultReloadInterval}
	r.dry.eng.Store(chk.dry)
	var err error
	if r.hash, err = checkedHash(chk); err != nil {
		return nil, err
	}
	r.stamps = stampAll(watched(chk.pol))
	return r, nil
}

// watched are the files whose change triggers a reload.
func watched(pol *policy.Policy) []string {
	var files []string
	if src := pol.Source(); src != policy.EmbeddedName {
		files = append(files, src)
	}
	return append(files, parts(pol)...)
}

// parts are the files a policy names: its modules, the dry-run files.
func parts(pol *policy.Policy) []string {
	files := slices.Clone(pol.Rego.Modules)
	if pol.DryRun.Policy != "" {
		files = append(files, pol.DryRun.Policy)
		if dpol, err := policy.Load(pol.DryRun.Policy); err == nil {
			files = append(files, dpol.Rego.Modules...)
		}
	}
	return append(files, pol.DryRun.Modules...)
}

func stampAll(files []string) map[string]fileStamp {
	out := make(map[string]fileStamp, len(files))
	for _, f := range files {
		out[f] = stamp(f)
	}
	return out
}

// maxWatchedSize bounds what one poll reads of a file.
const maxWatchedSize = 16 << 20

func stamp(path string) fileStamp {
	f, err := os.Open(path)
	if err != nil {
		return fileStamp{missing: true}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileStamp{missing: true}
	}
	h := sha256.New()
	_, _ = io.Copy(h, io.LimitReader(f, maxWatchedSize))
	s := fileStamp{mtime: st.ModTime(), size: st.Size()}
	h.Sum(s.sum[:0])
	return s
}

// checkedHash is policyHash of chk's policy; for a policy that came in a
// bundle, the sha256 of the bundle's revision, policy document and
// modules, each framed by its name and length: the persisted copy on disk is the
// bundle in force, which a new bundle is not until a reload applies it.
func checkedHash(chk *checked) (string, error) {
	if chk.snapshot == nil {
		return policyHash(chk.pol)
	}
	h := sha256.New()
	add := func(name string, data []byte) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	add("revision", []byte(chk.snapshot.Revision))
	add("policy", chk.snapshot.Policy)
	for _, name := range slices.Sorted(maps.Keys(chk.snapshot.Modules)) {
		add(name, []byte(chk.snapshot.Modules[name]))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// policyHash is the sha256 of what the policy is made of: the policy
// file (the embedded default's source when it has none), then each user
// module and the dry-run files, each framed by its name and length.
func policyHash(pol *policy.Policy) (string, error) {
	h := sha256.New()
	add := func(name string, data []byte) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	if src := pol.Source(); src == policy.EmbeddedName {
		add(src, policy.EmbeddedYAML())
	} else {
		data, err := os.ReadFile(src)
		if err != nil {
			return "", fmt.Errorf("policy hash: %w", err)
		}
		add(src, data)
	}
	for _, f := range parts(pol) {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("policy hash: %w", err)
		}
		add(f, data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// run reloads on SIGHUP and when a watched file changes, until ctx ends.
// The returned function stops it and waits.
func (r *reloader) run(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		var tick <-chan time.Time
		if r.interval > 0 {
			t := time.NewTicker(r.interval)
			defer t.Stop()
			tick = t.C
			r.pinsSeen = r.lookPins() // as the server started with them
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload(ctx, "signal")
			case <-tick:
				if r.changed() {
					r.reload(ctx, "file change")
				}
				r.pinsChanged(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// settle is how long a change must stay the same before it is reloaded:
// editors write a file in several steps.
const settle = 50 * time.Millisecond

// changed reports whether a watched file changed since the last reload,
// and has stopped changing.
func (r *reloader) changed() bool {
	r.mu.Lock()
	stamps := r.stamps
	r.mu.Unlock()
	now := map[string]fileStamp{}
	for f, was := range stamps {
		if s := stamp(f); s != was {
			now[f] = s
		}
	}
	if len(now) == 0 {
		return false
	}
	time.Sleep(settle)
	for f, s := range now {
		if stamp(f) != s {
			return false // still being written: next poll
		}
	}
	return true
}

// reload reads, checks and applies the policy; see the top of the file.
// It reports whether a new policy was applied.
func (r *reloader) reload(ctx context.Context, trigger string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	old := r.pol
	change := &audit.PolicyChange{Source: old.Source(), OldHash: r.hash, Trigger: trigger}
	// Whatever happens, the files as they are now are the ones seen:
	// a rejected policy is not retried until it changes again.
	r.stamps = stampAll(watched(old))

	var chk *checked
	var err error
	if r.load != nil {
		chk, err = r.load(ctx)
	} else {
		chk, err = checkPolicy(ctx, r.file)
	}
	if err == nil && r.own != nil {
		// The variables a policy and its dry-run policy take are the
		// server's own from the moment they are read, whether or not
		// this reload applies them, and for as long as the process
		// runs: the set is the union of every policy checked. A reload
		// that drops a ${VAR} does not free it: the audit and plugin
		// settings a reload keeps, and the telemetry started with the
		// first policy, may still hold its value; a policy refused
		// until a restart names variables that are credentials all the
		// same.
		r.own.AddOwnEnv(chk.envRefs()...)
	}
	if err == nil {
		change.Source, change.Revision = chk.pol.Source(), chk.revision()
		r.stamps = stampAll(watched(chk.pol))
		change.NewHash, err = checkedHash(chk)
	}
	if err == nil && change.NewHash == r.hash {
		r.log.Info("policy reload: the policy is unchanged", "policy", change.Source, "hash", r.hash, "trigger", trigger)
		return false
	}
	var eff *policy.Policy
	if err == nil {
		eff, change.Kept, err = r.effective(ctx, old, chk)
	}
	if err != nil {
		r.log.Error("policy reload rejected; the policy in force stays", "policy", change.Source, "trigger", trigger, "err", err)
		r.record(ctx, audit.ResultDeny, change, err, time.Since(start))
		return false
	}
	for _, w := range chk.warnings {
		r.log.Warn("policy: " + w)
	}
	for _, k := range change.Kept {
		r.log.Warn("policy reload: "+k+" needs a restart to change; the value in force stays", "policy", change.Source)
	}
	r.eng.Adopt(chk.eng)
	r.dry.eng.Store(chk.dry)
	if r.limiter != nil {
		r.limiter.SetConfig(rateConfig(eff))
	}
	r.pol, r.hash = eff, change.NewHash
	if r.applied != nil {
		r.applied(chk)
		// It may have written a watched file (the kept bundle).
		r.stamps = stampAll(watched(chk.pol))
	}
	took := time.Since(start)
	r.record(ctx, audit.ResultAllow, change, nil, took)
	r.log.Info("policy reloaded", "policy", change.Source, "old_hash", change.OldHash, "new_hash", change.NewHash,
		"trigger", trigger, "took", took)
	if r.srv != nil {
		r.srv.PolicyChanged(ctx)
	}
	return true
}

// effective checks what the new policy changes that only a restart can
// apply. Audit and plugin settings keep the values in force (kept names
// them); the engine is rebuilt for the policy as in force then, so the
// server's own files it protects are those in use. A change to what the
// guards and the sandbox were built from rejects the policy.
func (r *reloader) effective(ctx context.Context, old *policy.Policy, chk *checked) (*policy.Policy, []string, error) {
	eff := *chk.pol
	var kept []string
	if !reflect.DeepEqual(old.Audit, eff.Audit) {
		kept = append(kept, "audit")
		eff.Audit = old.Audit
	}
	if !reflect.DeepEqual(old.Plugins, eff.Plugins) && !(len(old.Plugins) == 0 && len(eff.Plugins) == 0) {
		kept = append(kept, "plugins")
		eff.Plugins = old.Plugins
	}
	// External plugins and upstream servers run as started: their
	// directories stay the server's own files while they do.
	if !reflect.DeepEqual(old.External, eff.External) {
		kept = append(kept, "plugins.external")
		eff.External = old.External
	}
	if !reflect.DeepEqual(old.Servers, eff.Servers) && !(len(old.Servers) == 0 && len(eff.Servers) == 0) {
		kept = append(kept, "servers")
		eff.Servers = old.Servers
	}
	var restart []string
	if !slices.Equal(old.Roots(), eff.Roots()) {
		roots := func(p *policy.Policy) string {
			if r := p.Roots(); len(r) > 0 {
				return strings.Join(r, ", ")
			}
			return "(none)"
		}
		restart = append(restart, "filesystem.allowed_paths (the directories files are opened below: "+roots(old)+" -> "+roots(&eff)+")")
	}
	if !reflect.DeepEqual(old.Commands, eff.Commands) {
		restart = append(restart, "commands")
	}
	if !slices.Equal(old.ChildPorts(), eff.ChildPorts()) {
		restart = append(restart, "network.allowed_endpoints ports (the TCP ports commands may connect to)")
	}
	if old.Timeout() != eff.Timeout() {
		restart = append(restart, "tools.timeout")
	}
	childrenMayRun := commandsMayRun(old) || len(old.External.Dirs) > 0 || len(old.Servers) > 0
	if childrenMayRun && !reflect.DeepEqual(protectedPaths(old), protectedPaths(&eff)) {
		restart = append(restart, "the server's own files kept from commands (rego.modules or the policy file moved)")
	}
	if len(restart) > 0 {
		return nil, nil, fmt.Errorf("%s changed: %w", strings.Join(restart, "; "), errNeedsRestart)
	}
	if len(kept) > 0 {
		// Build the engine for the policy in force: its data names the
		// audit log and plugin files really in use.
		cfg, err := engineConfig(&eff)
		if err != nil {
			return nil, nil, err
		}
		if chk.eng, err = engine.New(ctx, cfg); err != nil {
			return nil, nil, err
		}
		chk.cfg = cfg
	}
	chk.eng.Warm(ctx)
	return &eff, kept, nil
}

// errNeedsRestart ends the error of a policy a reload cannot apply.
var errNeedsRestart = errors.New("a reload cannot apply this; restart the server to apply it")

// commandsMayRun reports whether the policy lets any command run.
func commandsMayRun(pol *policy.Policy) bool {
	return pol.Commands.Allowed == nil || len(*pol.Commands.Allowed) > 0
}

// record writes the policy_reload audit record.
func (r *reloader) record(ctx context.Context, result string, change *audit.PolicyChange, err error, took time.Duration) {
	rec := audit.Record{
		DecisionID: audit.NewID(),
		Kind:       audit.KindPolicyReload,
		Result:     result,
		Policy:     change,
		DurationNS: took.Nanoseconds(),
	}
	if err != nil {
		rec.Error = err.Error()
	}
	if r.audit == nil {
		return
	}
	if err := r.audit.Log(context.WithoutCancel(ctx), rec); err != nil {
		r.log.Error("audit write failed for a policy reload", "err", err)
	}
}
