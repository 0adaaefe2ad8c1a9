// Package ocitest is a minimal OCI distribution registry for tests: it
// serves OPA bundles pushed to it as OCI artifacts (an image manifest
// with an empty config and the bundle as its one tar+gzip layer), over
// loopback, read-only, with an optional Authorization header. It answers what
// OPA's OCI downloader asks: HEAD and GET of manifests by tag or
// digest, GET of blobs by digest.
package ocitest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Media types of what Push stores.
const (
	MediaManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaConfig   = "application/vnd.oci.image.config.v1+json"
	MediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Registry is a loopback registry; Close it when done.
type Registry struct {
	*httptest.Server
	// Authorization, when set, is the header every request must carry.
	// (OPA sends a bearer token to an OCI registry base64-encoded:
	// "Bearer " + base64(token); with scheme Basic and a token
	// user:password that is HTTP basic authentication.)
	Authorization string

	mu    sync.Mutex
	tags  map[string]string // repository:tag -> manifest digest
	blobs map[string]blob   // digest -> content

	// Manifests counts manifest requests; Blobs counts blob downloads;
	// Unauthorized counts requests refused for want of the token.
	Manifests, Blobs, Unauthorized atomic.Int64
}

type blob struct {
	data      []byte
	mediaType string
}

// New starts a registry on loopback.
func New() *Registry {
	r := &Registry{tags: map[string]string{}, blobs: map[string]blob{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// Host is the registry's host:port, as an OCI reference names it.
func (r *Registry) Host() string { return strings.TrimPrefix(r.URL, "http://") }

// Push stores bundle (a .tar.gz) as repository:tag and returns the
// layer's digest (sha256:hex).
func (r *Registry) Push(repository, tag string, bundle []byte) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	config := r.put([]byte("{}"), MediaConfig)
	layer := r.put(bundle, MediaLayer)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaManifest,
		"config":        map[string]any{"mediaType": MediaConfig, "digest": config, "size": 2},
		"layers":        []any{map[string]any{"mediaType": MediaLayer, "digest": layer, "size": len(bundle)}},
	})
	r.tags[repository+":"+tag] = r.put(manifest, MediaManifest)
	return layer
}

func (r *Registry) put(data []byte, mediaType string) string {
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	r.blobs[d] = blob{data: data, mediaType: mediaType}
	return d
}

// serve answers /v2/<repository>/manifests/<tag|digest> and
// /v2/<repository>/blobs/<digest>.
func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	if r.Authorization != "" && req.Header.Get("Authorization") != r.Authorization {
		r.Unauthorized.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	path, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	r.mu.Lock()
	var b blob
	var digest string
	if i := strings.LastIndex(path, "/manifests/"); i >= 0 {
		r.Manifests.Add(1)
		repo, ref := path[:i], path[i+len("/manifests/"):]
		digest = ref
		if !strings.HasPrefix(ref, "sha256:") {
			digest = r.tags[repo+":"+ref]
		}
		b, ok = r.blobs[digest]
		ok = ok && b.mediaType == MediaManifest
	} else if i := strings.LastIndex(path, "/blobs/"); i >= 0 {
		digest = path[i+len("/blobs/"):]
		b, ok = r.blobs[digest]
		if ok && req.Method == http.MethodGet {
			r.Blobs.Add(1)
		}
	} else {
		ok = false
	}
	r.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", b.mediaType)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.Itoa(len(b.data)))
	if req.Method == http.MethodGet {
		w.Write(b.data)
	}
}
