package bundle

import (
	"errors"
	"strings"

	"github.com/open-policy-agent/opa/v1/download"
)

// Refusal is a downloaded bundle that did not become Current: its
// signature failed (or it had none, or named another key id), it did not
// fit the layout, it was older than the bundle in force (see
// Config.RevisionOrder), or Check refused its policy. The bundle in
// force stays.
type Refusal struct {
	// Revision is the refused bundle's manifest revision; "" when the
	// bundle could not be read as far as its manifest (a bad signature
	// stops OPA's reader before it hands the bundle out).
	Revision string
	// InForce is the revision of the bundle last activated, which stays
	// in force.
	InForce string
	// ETag is the service's ETag of the refused bundle, when known.
	ETag string
	// Err says why.
	Err error
}

// refusalKey tells a repeated refusal from a new one.
func (r Refusal) key() string { return r.Revision + "\x00" + r.ETag + "\x00" + r.Err.Error() }

// downloadFailed reports whether err of a download is the service not
// answering with a bundle (no connection, an HTTP error status), as
// opposed to a bundle that came and was refused.
func downloadFailed(err error) bool {
	if _, ok := errors.AsType[download.HTTPError](err); ok {
		return true
	}
	// OPA's downloaders wrap every error of the request itself so: the
	// bundle service's, and the OCI registry's pull.
	msg := err.Error()
	return strings.HasPrefix(msg, "request failed: ") || strings.HasPrefix(msg, "failed to pull ")
}

// refuse counts r and hands it to OnRefuse, unless it repeats the
// refusal before it: OPA's downloader asks again for a bundle that failed
// verification, and each poll would bring the same refusal.
func (s *Source) refuse(r Refusal) {
	s.stats.Failed.Add(1)
	s.log.Warn("bundle refused; keeping the last good bundle", "revision", r.InForce, "refused_revision", r.Revision, "err", r.Err)
	s.mu.Lock()
	repeat := s.lastRefusal == r.key()
	s.lastRefusal = r.key()
	s.mu.Unlock()
	if repeat || s.opts.OnRefuse == nil {
		return
	}
	s.opts.OnRefuse(r)
}
