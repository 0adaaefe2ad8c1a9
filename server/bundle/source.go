package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// Options are the hooks of a Source; all may be nil.
type Options struct {
	// Check decides whether a verified bundle may become Current: the
	// caller loads the policy and builds the engine from it, so a bundle
	// is checked exactly as a policy file is. An error refuses it.
	Check func(Snapshot) error
	// OnChange is called, outside any lock, after a new bundle became
	// Current (not for the bundle Open returns with); hot reload hangs
	// here. Calls come from the downloader's goroutine, one at a time.
	OnChange func(Snapshot)
	// OnRefuse is called, outside any lock, for each downloaded bundle
	// that was refused (Refusal); a refusal that repeats the one before
	// it (the same revision, ETag and reason: OPA downloads a bundle that
	// failed verification again on each poll) is counted and logged but
	// not passed on again, until a bundle is accepted or refused for
	// another reason. Calls come from
	// the downloader's goroutine, one at a time, also while Open waits
	// for the first download.
	OnRefuse func(Refusal)
	// Logger receives OPA's and this package's log lines.
	Logger *slog.Logger
}

// downloader is what a Source needs of OPA's downloaders (a bundle
// service's, an OCI registry's).
type downloader interface {
	Start(ctx context.Context)
	Stop(ctx context.Context)
	Trigger(ctx context.Context) error
	SetCache(etag string)
}

var (
	_ downloader = (*download.Downloader)(nil)
	_ downloader = (*download.OCIDownloader)(nil)
)

// Source is where the policy comes from: one bundle, kept current.
type Source struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	vc   *opabundle.VerificationConfig

	mu      sync.Mutex // serialises accept
	current atomic.Pointer[Snapshot]
	dl      downloader
	ociDir  string        // the OCI downloader's local store, removed at Stop
	first   chan struct{} // closed by the first download result
	once    sync.Once
	opened  atomic.Bool // OnChange is called only after Open returned

	lastRefusal string // Refusal.key of the last refusal, under mu
	floor       *floor // the last activated bundle's revision, under mu
	inForce     string // the last activated bundle's revision, under mu

	stats Stats
}

// Stats count what the downloads brought, for logs and tests.
type Stats struct {
	Accepted    atomic.Int64 // bundles that became Current
	NotModified atomic.Int64 // 304 answers (the ETag matched)
	Failed      atomic.Int64 // failed downloads and refused bundles
}

// Open loads the bundle cfg names and returns a Source whose Current is
// it. A local bundle must load and pass Check. For a service, Open waits
// (at most StartTimeout) for the first download; if that fails it uses
// the persisted last good bundle, and fails only when there is none.
// Polling starts with Start.
func Open(ctx context.Context, cfg Config, opts *Options) (*Source, error) {
	s := &Source{cfg: cfg, first: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	s.log = s.opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("bundle", cfg.Location)
	if err := CheckTransport(cfg.Location); err != nil {
		return nil, err
	}
	vc, err := cfg.verification()
	if err != nil {
		return nil, err
	}
	s.vc = vc
	if err := validOrder(cfg.RevisionOrder); err != nil {
		return nil, err
	}
	if !cfg.Remote() {
		snap, err := readLocal(cfg.Location, vc, cfg.Signing.KeyID)
		if err != nil {
			return nil, err
		}
		if err := s.check(snap); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", cfg.Location, err)
		}
		s.current.Store(&snap)
		return s, nil
	}
	if s.floor, err = loadFloor(cfg.StateDir); err != nil {
		if cfg.RevisionOrder != OrderNone {
			return nil, fmt.Errorf("%w: %w (rollback protection needs it; remove the file to trust the next bundle)", ErrConfig, err)
		}
		s.log.Warn("persisted revision floor not used", "err", err)
	}
	if err := s.restore(); err != nil {
		s.log.Warn("persisted bundle not used", "err", err)
	}
	if err := s.newDownloader(); err != nil {
		return nil, err
	}
	if cfg.Manual {
		err = s.dl.Trigger(ctx)
	} else {
		s.dl.Start(ctx)
		err = s.waitFirst(ctx)
	}
	if s.current.Load() == nil {
		s.Stop(ctx)
		return nil, fmt.Errorf("%w: %s: %w", ErrNoBundle, cfg.Location, err)
	}
	s.opened.Store(true)
	return s, nil
}

// restore makes the persisted bundle Current, verified and checked again.
func (s *Source) restore() error {
	data, etag, ok, err := loadPersisted(s.cfg.StateDir)
	if err != nil || !ok {
		return err
	}
	snap, err := readTarball("persisted "+s.cfg.Location, data, s.vc, s.cfg.Signing.KeyID)
	if err != nil {
		return err
	}
	if err := notOlder(s.cfg.RevisionOrder, s.floor, snap); err != nil {
		return err
	}
	if err := s.check(snap); err != nil {
		return err
	}
	snap.ETag = etag
	s.current.Store(&snap)
	// The persisted bundle ran before (only an activated bundle is
	// persisted), and is the floor when it is newer than the floor file
	// (whose write may have failed): a bundle between the two would roll
	// it back.
	f := floorOf(snap)
	s.floor = &f
	s.inForce = snap.Revision
	s.log.Info("persisted bundle loaded", "revision", snap.Revision)
	return nil
}

func (s *Source) newDownloader() error {
	svc, resource, err := s.cfg.service()
	if err != nil {
		return err
	}
	dc, err := s.cfg.download()
	if err != nil {
		return err
	}
	client, err := rest.New(svc, nil, rest.Logger(&opaLogger{log: s.log}))
	if err != nil {
		return fmt.Errorf("%w: service: %w", ErrConfig, err)
	}
	if s.cfg.OCI() {
		if s.ociDir, err = ociStore(s.cfg.StateDir); err != nil {
			return err
		}
		s.dl = download.NewOCI(dc, client, resource, s.ociDir).
			WithCallback(s.update).
			WithBundleVerificationConfig(s.vc).
			WithSizeLimitBytes(maxBundleBytes).
			WithBundlePersistence(true)
	} else {
		s.dl = download.New(dc, client, resource).
			WithCallback(s.update).
			WithBundleVerificationConfig(s.vc).
			WithSizeLimitBytes(maxBundleBytes).
			WithBundlePersistence(true)
	}
	if cur := s.current.Load(); cur != nil && cur.ETag != "" {
		s.dl.SetCache(cur.ETag)
	}
	return nil
}

func (s *Source) waitFirst(ctx context.Context) error {
	d := s.cfg.StartTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.first:
		return nil
	case <-t.C:
		return errors.New("first download timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// update is the downloader's callback: every download ends here.
func (s *Source) update(_ context.Context, u download.Update) error {
	defer s.once.Do(func() { close(s.first) })
	s.mu.Lock()
	rev := s.inForce
	s.mu.Unlock()
	switch {
	case u.Error != nil && !downloadFailed(u.Error):
		s.refuse(Refusal{InForce: rev, Err: u.Error})
		return nil
	case u.Error != nil:
		s.stats.Failed.Add(1)
		s.log.Warn("bundle download failed; keeping the last good bundle", "revision", rev, "err", u.Error)
		return nil
	case u.Bundle == nil:
		s.stats.NotModified.Add(1)
		return nil
	}
	snap, err := snapshotOf(u.Bundle, s.cfg.Signing.KeyID)
	if err == nil {
		s.mu.Lock()
		f := s.floor
		s.mu.Unlock()
		err = notOlder(s.cfg.RevisionOrder, f, snap)
	}
	if err == nil {
		err = s.check(snap)
	}
	if err != nil {
		s.refuse(Refusal{Revision: u.Bundle.Manifest.Revision, InForce: rev, ETag: u.ETag, Err: err})
		return err
	}
	snap.ETag = u.ETag
	if u.Raw != nil {
		if snap.raw, err = io.ReadAll(u.Raw); err != nil {
			s.log.Warn("bundle accepted but its bytes not read: it will not be persisted", "err", err)
			snap.raw = nil
		}
	}
	s.install(snap)
	return nil
}

// Activated tells the source that snap (a bundle it handed out: Current,
// or one passed to OnChange) is in force: the server started with it, or
// a reload applied it. Only now does it become the last good bundle,
// persisted for a restart without the service, and the rollback floor
// (Config.RevisionOrder). A bundle that passed Check but was never
// applied (a reload refused it: it needs a restart) is neither: a
// restart without the service comes back on the bundle that ran, and the
// service may still serve the revisions between the two.
//
// A bundle older than the floor is not activated (the floor only rises):
// the error says so, and nothing changes.
func (s *Source) Activated(snap Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := notOlder(s.cfg.RevisionOrder, s.floor, snap); err != nil && s.cfg.Remote() {
		return err
	}
	s.inForce = snap.Revision
	if !s.cfg.Remote() {
		return nil
	}
	f := floorOf(snap)
	s.floor = &f
	// The floor first, whatever becomes of the bundle's own copy: a floor
	// left behind the bundle in force would let a restart accept the
	// bundles between them. A kept bundle older than the floor is not
	// used (a restart then waits for the service), which fails closed.
	if err := persistFloor(s.cfg.StateDir, f); err != nil {
		s.log.Warn("bundle activated but its revision floor not persisted", "revision", snap.Revision, "err", err)
	}
	if len(snap.raw) == 0 {
		return nil // restored from the persisted copy, or Open's local bundle
	}
	if err := persist(s.cfg.StateDir, snap.raw, snap.ETag); err != nil {
		s.log.Warn("bundle activated but not persisted", "revision", snap.Revision, "err", err)
	}
	return nil
}

// Admissible reports whether snap may be put in force now: not older
// than the rollback floor, which may have risen since snap was checked
// (a newer bundle activated while an older one, downloaded after it,
// became Current). A reload asks before it applies a bundle.
func (s *Source) Admissible(snap Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.Remote() {
		return nil
	}
	return notOlder(s.cfg.RevisionOrder, s.floor, snap)
}

func (s *Source) check(snap Snapshot) error {
	if s.opts.Check == nil {
		return nil
	}
	return s.opts.Check(snap)
}

func (s *Source) install(snap Snapshot) {
	s.mu.Lock()
	s.current.Store(&snap)
	s.lastRefusal = ""
	s.stats.Accepted.Add(1)
	s.mu.Unlock()
	s.log.Info("bundle verified and checked", "revision", snap.Revision)
	if s.opts.OnChange != nil && s.opened.Load() {
		s.opts.OnChange(snap)
	}
}

// Current returns the newest bundle that passed verification and Check:
// policy document, modules, revision. It is the one to apply; it is in
// force once Activated.
func (s *Source) Current() Snapshot {
	if p := s.current.Load(); p != nil {
		return *p
	}
	return Snapshot{}
}

// Stats returns the download counters.
func (s *Source) Stats() *Stats { return &s.stats }

// Poll downloads once now (a local bundle: nothing to do). With Manual
// it is the only way new bundles arrive.
func (s *Source) Poll(ctx context.Context) error {
	if s.dl == nil {
		return nil
	}
	return s.dl.Trigger(ctx)
}

// Stop ends polling; a Source without a service has none.
func (s *Source) Stop(ctx context.Context) {
	if s.dl != nil {
		s.dl.Stop(ctx)
	}
	if s.ociDir != "" {
		if err := os.RemoveAll(s.ociDir); err != nil {
			s.log.Warn("OCI store not removed", "dir", s.ociDir, "err", err)
		}
	}
}

// ociStore makes the OCI downloader's local store: a new directory in
// stateDir (0700), so what one run pulled is not mistaken for another's.
func ociStore(stateDir string) (string, error) {
	if stateDir == "" {
		return "", fmt.Errorf("%w: an OCI registry needs a state directory", ErrConfig)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("OCI store: %w", err)
	}
	dir, err := os.MkdirTemp(stateDir, "oci-")
	if err != nil {
		return "", fmt.Errorf("OCI store: %w", err)
	}
	return filepath.Clean(dir), nil
}
