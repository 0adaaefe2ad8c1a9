package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Snapshot is one accepted bundle: what the server loads as its policy.
type Snapshot struct {
	// Policy is the policy document (JSON, which the YAML loader reads).
	Policy []byte
	// Modules are the bundle's .rego files by their path in the bundle.
	Modules map[string]string
	// Revision is the manifest's revision ("" when the bundle has none).
	Revision string
	// ETag is the service's ETag for the bundle ("" for a local bundle).
	ETag string
	// IssuedAt is the iat claim of the bundle's signature (seconds since
	// the epoch); 0 when it has none.
	IssuedAt int64

	// raw is the bundle as downloaded, persisted once it is activated
	// (Source.Activated); nil for a local or an already persisted one.
	raw []byte
}

// PolicyRoot is the data path of the policy document in a bundle.
var PolicyRoot = []string{"mcp_secure", "policy"}

// snapshotOf takes the policy document and modules out of b; with a
// keyID, b's signatures must name it.
func snapshotOf(b *opabundle.Bundle, keyID string) (Snapshot, error) {
	if keyID != "" {
		if err := checkKeyID(b, keyID); err != nil {
			return Snapshot{}, err
		}
	}
	if len(b.WasmModules) > 0 || len(b.PlanModules) > 0 {
		return Snapshot{}, fmt.Errorf("%w: wasm and plan modules are not used; remove them", ErrLayout)
	}
	top, _ := b.Data[PolicyRoot[0]].(map[string]any)
	for k := range b.Data {
		if k != PolicyRoot[0] {
			return Snapshot{}, fmt.Errorf("%w: data %q is not used (only %s); remove it", ErrLayout, k, strings.Join(PolicyRoot, "."))
		}
	}
	for k := range top {
		if k != PolicyRoot[1] {
			return Snapshot{}, fmt.Errorf("%w: data %s.%s is not used (only %s); remove it", ErrLayout, PolicyRoot[0], k, strings.Join(PolicyRoot, "."))
		}
	}
	doc, ok := top[PolicyRoot[1]].(map[string]any)
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: no policy document at data %s (mcp_secure/policy/data.yaml in the bundle)", ErrLayout, strings.Join(PolicyRoot, "."))
	}
	if _, ok := doc["rego"]; ok {
		return Snapshot{}, fmt.Errorf("%w: the policy document in a bundle has no rego section; its modules are the bundle's .rego files", ErrLayout)
	}
	pol, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return Snapshot{}, fmt.Errorf("%w: policy document: %w", ErrLayout, err)
	}
	mods := make(map[string]string, len(b.Modules))
	for _, m := range b.Modules {
		name := "bundle:" + strings.TrimPrefix(m.Path, "/")
		if strings.HasSuffix(name, "_test.rego") {
			continue // tests travel with the rules but are not policy
		}
		mods[name] = string(m.Raw)
	}
	return Snapshot{Policy: pol, Modules: mods, Revision: b.Manifest.Revision, ETag: b.Etag, IssuedAt: issuedAt(b)}, nil
}

// reader returns OPA's bundle reader over loader with verification vc.
func reader(loader opabundle.DirectoryLoader, vc *opabundle.VerificationConfig) *opabundle.Reader {
	r := opabundle.NewCustomReader(loader).WithSizeLimitBytes(maxBundleBytes)
	if vc != nil {
		return r.WithBundleVerificationConfig(vc)
	}
	return r.WithSkipBundleVerification(true)
}

// maxBundleBytes bounds every file of a bundle.
const maxBundleBytes = 32 << 20

// readLocal reads a bundle file (.tar.gz) or directory.
func readLocal(path string, vc *opabundle.VerificationConfig, keyID string) (Snapshot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Snapshot{}, err
	}
	var loader opabundle.DirectoryLoader
	if fi.IsDir() {
		loader = opabundle.NewDirectoryLoader(path).WithSizeLimitBytes(maxBundleBytes)
	} else {
		f, err := os.Open(path)
		if err != nil {
			return Snapshot{}, err
		}
		defer f.Close()
		loader = opabundle.NewTarballLoaderWithBaseURL(f, path).WithSizeLimitBytes(maxBundleBytes)
	}
	b, err := reader(loader, vc).Read()
	if err != nil {
		return Snapshot{}, fmt.Errorf("bundle %s: %w", path, err)
	}
	return snapshotOf(&b, keyID)
}

// readTarball reads a bundle from its .tar.gz bytes.
func readTarball(name string, data []byte, vc *opabundle.VerificationConfig, keyID string) (Snapshot, error) {
	loader := opabundle.NewTarballLoaderWithBaseURL(bytes.NewReader(data), name).WithSizeLimitBytes(maxBundleBytes)
	b, err := reader(loader, vc).Read()
	if err != nil {
		return Snapshot{}, fmt.Errorf("bundle %s: %w", name, err)
	}
	return snapshotOf(&b, keyID)
}

// ModuleNames returns the names of s's modules, sorted.
func (s Snapshot) ModuleNames() []string { return slices.Sorted(maps.Keys(s.Modules)) }
