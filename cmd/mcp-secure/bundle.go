package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/bundle"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// bundleParams are the --bundle flags: OPA's service, credentials,
// polling and signing settings for a policy that comes as a bundle.
type bundleParams struct {
	location    string
	keyFile     string
	keyID       string
	keyAlg      string
	tokenEnv    string
	tokenScheme string
	minDelay    time.Duration
	maxDelay    time.Duration
	longPoll    time.Duration
	stateDir    string
	startWait   time.Duration
	order       string // rollback protection: bundle.Order*
	once        bool   // download once, no polling (policy check)
}

func addBundleFlags(fs *flag.FlagSet, b *bundleParams) {
	fs.StringVar(&b.location, "bundle", "", "take the policy from an OPA bundle: a service `URL` (https; http to a loopback host only), an OCI registry reference (oci://host/repository:tag; oci+http:// without TLS, to a loopback host only) or a local .tar.gz or directory")
	fs.StringVar(&b.keyFile, "bundle-key", "", "PEM public key `file` that verifies the bundle's .signatures.json")
	fs.StringVar(&b.keyID, "bundle-key-id", "", "key `id` the bundle's signature must name")
	fs.StringVar(&b.keyAlg, "bundle-key-alg", "RS256", "signature `algorithm`")
	fs.StringVar(&b.tokenEnv, "bundle-token-env", "", "environment `variable` holding the service's bearer token")
	fs.StringVar(&b.tokenScheme, "bundle-token-scheme", "", "Authorization `scheme` of the token (default Bearer; Basic with a user:password token for an OCI registry)")
	fs.DurationVar(&b.minDelay, "bundle-min-delay", 60*time.Second, "least time between polls (whole seconds)")
	fs.DurationVar(&b.maxDelay, "bundle-max-delay", 120*time.Second, "most time between polls (whole seconds)")
	fs.DurationVar(&b.longPoll, "bundle-long-poll", 0, "long polling timeout (whole seconds; 0: off)")
	fs.StringVar(&b.stateDir, "bundle-state", "", "`directory` for the last good bundle (default $XDG_STATE_HOME/mcp-secure/bundles/…)")
	fs.DurationVar(&b.startWait, "bundle-start-timeout", 10*time.Second, "how long start-up waits for the service before it uses the last good bundle")
	fs.StringVar(&b.order, "bundle-revision-order", "", "rollback protection: refuse a bundle older than the last accepted one, by manifest revision (`natural` or lexical) or by the signature's iat claim (iat)")
}

// ownEnv are the variables the bundle flags make the server read for its
// credentials: no child process is given them (nor their values).
func (b bundleParams) ownEnv() []string {
	if b.tokenEnv == "" {
		return nil
	}
	return []string{b.tokenEnv}
}

func (b bundleParams) config() (bundle.Config, error) {
	secs := func(d time.Duration) *int64 {
		n := int64(math.Ceil(d.Seconds()))
		return &n
	}
	cfg := bundle.Config{
		Location:      b.location,
		Credentials:   bundle.Credentials{BearerTokenEnv: b.tokenEnv, Scheme: b.tokenScheme},
		Signing:       bundle.Signing{KeyID: b.keyID, KeyFile: b.keyFile, Algorithm: b.keyAlg},
		StateDir:      b.stateDir,
		StartTimeout:  b.startWait,
		Manual:        b.once,
		RevisionOrder: b.order,
	}
	if err := bundle.CheckTransport(cfg.Location); err != nil {
		return cfg, fmt.Errorf("--bundle: %w", err)
	}
	cfg.Polling.MinDelaySeconds, cfg.Polling.MaxDelaySeconds = secs(b.minDelay), secs(b.maxDelay)
	if b.longPoll > 0 {
		cfg.Polling.LongPollingTimeoutSeconds = secs(b.longPoll)
	}
	if !cfg.Remote() {
		if b.order != "" {
			return cfg, errors.New("--bundle-revision-order applies to a bundle service only")
		}
		abs, err := filepath.Abs(b.location)
		if err != nil {
			return cfg, err
		}
		cfg.Location = abs
		return cfg, nil
	}
	if cfg.StateDir == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if !filepath.IsAbs(base) {
			home, err := os.UserHomeDir()
			if err != nil {
				return cfg, fmt.Errorf("--bundle-state: no state directory: %w", err)
			}
			base = filepath.Join(home, ".local", "state")
		}
		sum := sha256.Sum256([]byte(cfg.Location))
		cfg.StateDir = filepath.Join(base, "mcp-secure", "bundles", hex.EncodeToString(sum[:8]))
	}
	return cfg, nil
}

// policySource names the policy loaded from a bundle: the local bundle,
// or the persisted copy of a service's, so it is among the server's own
// files that tools cannot reach.
func policySource(cfg bundle.Config) (name, dir string) {
	if cfg.Remote() {
		return filepath.Join(cfg.StateDir, "bundle.tar.gz"), cfg.StateDir
	}
	return cfg.Location, filepath.Dir(cfg.Location)
}

// checkSnapshot runs every start-up check on a bundle's policy: the same
// loader and engine build as a policy file, its .rego files as the user
// modules.
func checkSnapshot(ctx context.Context, cfg bundle.Config, s bundle.Snapshot) (*checked, error) {
	name, dir := policySource(cfg)
	pol, err := policy.Parse(name, dir, s.Policy, nil)
	if err != nil {
		return nil, &exitErr{code: exitUsage, err: fmt.Errorf("bundle revision %q: %w", s.Revision, err)}
	}
	if cfg.Remote() {
		pol.SetStateDir(cfg.StateDir)
	}
	pol.SetRevision(s.Revision)
	return checkLoaded(ctx, pol, s.Modules)
}

// openBundle opens the bundle source and checks its current bundle. The
// source polls on; onChange hears of every later bundle that passed the
// same checks.
func openBundle(ctx context.Context, b bundleParams, log *slog.Logger, onChange func(bundle.Snapshot), onRefuse func(bundle.Refusal)) (*checked, *bundle.Source, error) {
	cfg, err := b.config()
	if err != nil {
		return nil, nil, &exitErr{code: exitUsage, err: err}
	}
	// The check of the bundle Open returns with is kept, so start-up
	// builds the engine once.
	var mu sync.Mutex
	var lastSnap bundle.Snapshot
	var lastChk *checked
	src, err := bundle.Open(ctx, cfg, &bundle.Options{
		Check: func(s bundle.Snapshot) error {
			chk, err := checkSnapshot(ctx, cfg, s)
			if err == nil {
				mu.Lock()
				lastSnap, lastChk = s, chk
				mu.Unlock()
			}
			return err
		},
		OnChange: onChange,
		OnRefuse: onRefuse,
		Logger:   log,
	})
	if err != nil {
		return nil, nil, &exitErr{code: exitUsage, err: err}
	}
	cur := src.Current()
	mu.Lock()
	chk := lastChk
	if !sameSnapshot(lastSnap, cur) {
		chk = nil
	}
	mu.Unlock()
	if chk == nil {
		if chk, err = checkSnapshot(ctx, cfg, cur); err != nil {
			src.Stop(ctx)
			return nil, nil, err
		}
	}
	chk.snapshot = &cur
	if cfg.Signing.KeyFile == "" {
		// Only a local file may go unsigned (a service may not): whoever
		// can write it chooses the policy.
		chk.warnings = append(chk.warnings, fmt.Sprintf("bundle %s is not verified (no --bundle-key): whoever can write the file chooses the policy", cfg.Location))
	}
	log.Info("policy from bundle", "bundle", cfg.Location, "revision", cur.Revision, "modules", cur.ModuleNames())
	return chk, src, nil
}

func sameSnapshot(a, b bundle.Snapshot) bool {
	return a.Revision == b.Revision && bytes.Equal(a.Policy, b.Policy) && maps.Equal(a.Modules, b.Modules)
}

// servePolicy is the policy serve starts with: from --bundle, else from
// the policy file.
func servePolicy(ctx context.Context, p serveParams, log *slog.Logger) (*checked, *bundle.Source, error) {
	if p.bundle.location == "" {
		// The engine builds while serve does the rest of its start.
		chk, err := startPolicy(ctx, p.policyFile)
		return chk, nil, err
	}
	if p.policyFile != "" {
		return nil, nil, usageErr("--policy and --bundle exclude each other")
	}
	return openBundle(ctx, p.bundle, log, func(s bundle.Snapshot) {
		log.Info("new bundle revision verified and persisted", "revision", s.Revision)
		select {
		case p.bundleChanged <- struct{}{}:
		default: // a reload is pending already: it reads Current
		}
	}, func(r bundle.Refusal) {
		// Queued until the audit log is open (a refusal can come while
		// start-up waits for the first download).
		select {
		case p.bundleRefused <- r:
		default:
			log.Error("bundle refusal not audited: too many pending", "refused_revision", r.Revision, "err", r.Err)
		}
	})
}

// reloadBundles makes the reloader take the policy from src: on each new
// bundle (and on SIGHUP, or when a local bundle file changes) it checks
// src's current bundle as at start-up, and the audit label follows the
// revision in force. Each bundle src refused is audited (policy_reload,
// result deny). The returned function stops it.
func reloadBundles(ctx context.Context, p serveParams, src *bundle.Source, rl *reloader, alog *audit.Logger) (stop func()) {
	cfg, err := p.bundle.config()
	if err != nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	rl.load = func(ctx context.Context) (*checked, error) {
		cur := src.Current()
		// The floor may have risen past cur since it was checked: such a
		// bundle is refused, not applied below the floor.
		if err := src.Admissible(cur); err != nil {
			return nil, err
		}
		chk, err := checkSnapshot(ctx, cfg, cur)
		if err == nil {
			chk.snapshot = &cur
		}
		return chk, err
	}
	// A bundle becomes the kept bundle and the rollback floor only once
	// a reload applied it: not one the reload refused (it needs a
	// restart), which has never run.
	rl.applied = func(chk *checked) {
		alog.SetLabel(audit.LabelBundleRevision, chk.revision())
		activate(src, chk, rl.log)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.bundleChanged:
				rl.reload(ctx, "bundle revision "+src.Current().Revision)
			case r := <-p.bundleRefused:
				rl.refused(ctx, cfg.Location, r)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// bundleRefusals is how many refusals wait for the audit log at most.
const bundleRefusals = 16

// refused writes the policy_reload record of a bundle the source
// refused: result deny, the refused revision and the reason; the label
// bundle_revision names the revision that stays in force.
func (r *reloader) refused(ctx context.Context, location string, ref bundle.Refusal) {
	change := &audit.PolicyChange{Source: location, Trigger: "bundle download", Revision: ref.Revision}
	r.record(ctx, audit.ResultDeny, change, fmt.Errorf("bundle refused; revision %q stays in force: %w", ref.InForce, ref.Err), 0)
}

// activate tells src that chk's bundle is in force.
func activate(src *bundle.Source, chk *checked, log *slog.Logger) {
	if chk.snapshot == nil {
		return
	}
	if err := src.Activated(*chk.snapshot); err != nil {
		log.Error("the bundle in force is not kept for a restart", "revision", chk.revision(), "err", err)
	}
}
