package bundle

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins"
)

// Config says where the bundle comes from and how it is trusted. The
// names follow OPA's configuration (services, bundles, keys).
type Config struct {
	// Location is a bundle service URL (https, or http to a loopback
	// host; the path is the bundle's resource), an OCI registry
	// reference (oci://host/repo:tag or @digest; oci+http:// for a
	// loopback registry without TLS), or a local .tar.gz file or
	// directory. See CheckTransport.
	Location string
	// Credentials authenticate to the service.
	Credentials Credentials
	// Polling is OPA's bundle polling: min_delay_seconds,
	// max_delay_seconds, long_polling_timeout_seconds.
	Polling download.PollingConfig
	// Manual polls only when Poll is called (OPA's trigger: manual).
	Manual bool
	// Signing verifies .signatures.json. Required for a service.
	Signing Signing
	// StateDir keeps the last good bundle of a service (0700), and the
	// revision floor of RevisionOrder.
	StateDir string
	// RevisionOrder, when set (OrderNatural, OrderLexical,
	// OrderIssuedAt), refuses a downloaded bundle older than the last
	// accepted one: rollback protection. See order.go.
	RevisionOrder string
	// StartTimeout bounds the first download at Open; after it Open
	// falls back to the persisted bundle. Zero means 10 s.
	StartTimeout time.Duration
}

// Credentials are OPA's service credentials; only a bearer token is
// supported, read from an environment variable.
type Credentials struct {
	// BearerTokenEnv names the variable holding the token.
	BearerTokenEnv string
	// Scheme is the Authorization scheme; empty means Bearer.
	Scheme string
}

// Signing is OPA's bundle signing: keys by id, the id required.
type Signing struct {
	// KeyID is the id the signature must carry (OPA's keyid), required.
	KeyID string
	// KeyFile holds the PEM public key (or the HMAC secret).
	KeyFile string
	// Algorithm is the JWT algorithm; empty means RS256.
	Algorithm string
	// Scope, when set, must match the signature's scope.
	Scope string
}

// Remote reports whether c names a bundle service or an OCI registry.
func (c Config) Remote() bool {
	return strings.HasPrefix(c.Location, "http://") || strings.HasPrefix(c.Location, "https://") || c.OCI()
}

// OCI reports whether c names a bundle in an OCI registry.
func (c Config) OCI() bool {
	return strings.HasPrefix(c.Location, ociScheme) || strings.HasPrefix(c.Location, ociHTTPScheme)
}

// Schemes of an OCI registry reference in Config.Location.
const (
	ociScheme     = "oci://"
	ociHTTPScheme = "oci+http://"
)

// CheckTransport refuses a location without TLS (a bundle service at
// http://, a registry at oci+http://) unless its host is a loopback
// address (127.0.0.0/8, ::1) or localhost. The bundle's signature is
// required either way and keeps its content honest, but over plaintext
// on the network anyone on the path reads the token sent with every
// request and can replay an older signed bundle (refused only with a
// RevisionOrder) or hold back new ones. A loopback registry, or a local
// proxy or tunnel that speaks TLS onwards, is fine. It touches no
// network: Open calls it before anything is read or dialled.
func CheckTransport(location string) error {
	scheme, ok := "", false
	for _, p := range []string{"http://", ociHTTPScheme} {
		if strings.HasPrefix(location, p) {
			scheme, ok = p, true
		}
	}
	if !ok {
		return nil
	}
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: bundle URL %q", ErrConfig, location)
	}
	if loopbackHost(u.Hostname()) {
		return nil
	}
	instead := "https://"
	if scheme == ociHTTPScheme {
		instead = ociScheme
	}
	return fmt.Errorf("%w: %s has no TLS and %s is not a loopback host: on the network anyone on the path could read the token and replay or hold back bundles; use %s, or a loopback address (127.0.0.0/8, ::1, localhost)",
		ErrConfig, u.Redacted(), u.Hostname(), instead)
}

// loopbackHost reports whether host (no port, no brackets) is localhost
// or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// verification builds OPA's verification config, or nil when c has no key.
func (c Config) verification() (*opabundle.VerificationConfig, error) {
	s := c.Signing
	if s.KeyFile == "" && s.KeyID == "" {
		if c.Remote() {
			return nil, fmt.Errorf("%w: a bundle service needs a verification key and key id", ErrConfig)
		}
		return nil, nil
	}
	if s.KeyFile == "" || s.KeyID == "" {
		return nil, fmt.Errorf("%w: signing needs both a key file and a key id", ErrConfig)
	}
	key, err := os.ReadFile(s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: verification key: %w", ErrConfig, err)
	}
	alg := s.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	// The key's text, not keys.NewKeyConfig: that takes its argument for
	// a file name first and fails on a PEM text that is no valid path.
	kc := &keys.Config{Key: string(key), Algorithm: alg, Scope: s.Scope}
	ks := map[string]*opabundle.KeyConfig{s.KeyID: kc}
	vc := opabundle.NewVerificationConfig(ks, s.KeyID, s.Scope, nil)
	if err := vc.ValidateAndInjectDefaults(ks); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return vc, nil
}

// service splits Location into OPA's service config (JSON) and resource.
func (c Config) service() ([]byte, string, error) {
	u, err := url.Parse(c.Location)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("%w: bundle URL %q", ErrConfig, c.Location)
	}
	if u.User != nil {
		return nil, "", fmt.Errorf("%w: bundle URL must not carry credentials; use a bearer token", ErrConfig)
	}
	resource := strings.TrimPrefix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		resource += "?" + u.RawQuery
	}
	if resource == "" {
		return nil, "", fmt.Errorf("%w: bundle URL %q names no resource", ErrConfig, c.Location)
	}
	svc := map[string]any{"name": "mcp-secure", "url": u.Scheme + "://" + u.Host}
	if c.OCI() {
		// OPA's OCI downloader: the resource is the whole reference, and
		// the service URL's scheme says whether TLS is used.
		if err := ociReference(u); err != nil {
			return nil, "", err
		}
		scheme := "https"
		if strings.HasPrefix(c.Location, ociHTTPScheme) {
			scheme = "http"
		}
		svc["url"], svc["type"] = scheme+"://"+u.Host, "oci"
		resource = u.Host + u.Path
	}
	if env := c.Credentials.BearerTokenEnv; env != "" {
		tok, ok := os.LookupEnv(env)
		if !ok || tok == "" {
			return nil, "", fmt.Errorf("%w: bearer token variable %s is unset or empty", ErrConfig, env)
		}
		bearer := map[string]any{"token": tok}
		if c.Credentials.Scheme != "" {
			bearer["scheme"] = c.Credentials.Scheme
		}
		svc["credentials"] = map[string]any{"bearer": bearer}
	}
	raw, err := json.Marshal(svc)
	return raw, resource, err
}

// ociReference checks that u names a repository and a tag or digest.
func ociReference(u *url.URL) error {
	repo := strings.TrimPrefix(u.Path, "/")
	last := repo[strings.LastIndex(repo, "/")+1:]
	switch {
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%w: OCI reference %q: no query or fragment", ErrConfig, u.Redacted())
	case strings.Contains(repo, "@"):
		if !strings.Contains(repo[strings.Index(repo, "@"):], ":") {
			return fmt.Errorf("%w: OCI reference %q: a digest is algorithm:hex", ErrConfig, u.Redacted())
		}
	case !strings.Contains(last, ":") || strings.HasSuffix(last, ":") || strings.HasPrefix(last, ":"):
		return fmt.Errorf("%w: OCI reference %q names no tag or digest (oci://host/repository:tag)", ErrConfig, u.Redacted())
	}
	return nil
}

// download returns OPA's downloader config, validated with its defaults.
func (c Config) download() (download.Config, error) {
	trigger := plugins.TriggerPeriodic
	if c.Manual {
		trigger = plugins.TriggerManual
	}
	dc := download.Config{Trigger: &trigger, Polling: c.Polling}
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return dc, fmt.Errorf("%w: polling: %w", ErrConfig, err)
	}
	return dc, nil
}
