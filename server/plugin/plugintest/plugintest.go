// Package plugintest is the conformance kit every tool plugin passes: call
// [Run] from the plugin's tests.
package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// toolName is what MCP clients accept as a tool name.
var toolName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Host is a minimal plugin.Host for tests: a catalog over fixed entries
// whose Permitted answer comes from Allow (nil allows everything).
type Host struct {
	Entries []plugin.Entry
	Allow   func(tool string) (bool, []string)
	// Net is the network handed to the plugin; nil refuses every
	// connection. [Loopback] reaches loopback addresses only.
	Net plugin.Network
	// FS is the filesystem door; nil allows nothing ([DirFiles] with no
	// roots).
	FS plugin.Files
	// Cmd is the command door; nil refuses every process.
	Cmd plugin.Commands
	// Data is the root of DataDir; empty makes DataDir fail.
	Data string
	// Settings are plugins.<name>.<key> values.
	Settings map[string]map[string]string
}

func (h *Host) Files() plugin.Files {
	if h.FS == nil {
		return DirFiles{}
	}
	return h.FS
}

func (h *Host) Commands() plugin.Commands {
	if h.Cmd == nil {
		return NoCommands{}
	}
	return h.Cmd
}

func (h *Host) DataDir(name string) (string, error) {
	if h.Data == "" {
		return "", errors.New("plugintest: no data directory")
	}
	dir := filepath.Join(h.Data, name)
	return dir, os.MkdirAll(dir, 0o700)
}

func (h *Host) Setting(name, key string) string { return h.Settings[name][key] }

var _ plugin.Host = (*Host)(nil)

func (h *Host) Logger() *slog.Logger    { return slog.New(slog.DiscardHandler) }
func (h *Host) Catalog() plugin.Catalog { return catalog{h} }

func (h *Host) Network() plugin.Network {
	if h.Net == nil {
		return Loopback{Refuse: true}
	}
	return h.Net
}

// Loopback is a test network that connects only to loopback addresses
// (127.0.0.0/8, ::1), by IP literal, so a plugin test cannot reach
// anything else. With Refuse set it connects nowhere.
type Loopback struct{ Refuse bool }

var _ plugin.Network = Loopback{}

// ErrNotLoopback is returned for any other destination.
var ErrNotLoopback = errors.New("plugintest: only loopback IP addresses may be dialed")

func (l Loopback) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	if l.Refuse || err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("dial %s: %w", address, ErrNotLoopback)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (l Loopback) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DialContext: l.DialContext, DisableKeepAlives: true}}
}

type catalog struct{ h *Host }

func (c catalog) Entries() []plugin.Entry {
	out := append([]plugin.Entry(nil), c.h.Entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].Tool.Name < out[j].Tool.Name })
	return out
}

func (c catalog) Permitted(_ context.Context, _ *plugin.Call, tool string) (bool, []string) {
	if c.h.Allow == nil {
		return true, nil
	}
	return c.h.Allow(tool)
}

// Run checks the contract of the plugin registered under name, built on
// host: its info matches the registration, every tool has a valid name, a
// description, a category, a handler and an input schema that compiles as
// an object schema, names are unique, and each handler answers an empty
// argument object without panicking.
func Run(t *testing.T, name string, host plugin.Host) plugin.Plugin {
	t.Helper()
	f, ok := plugin.Lookup(name)
	if !ok {
		t.Fatalf("plugin %q is not registered", name)
	}
	p, err := f(host)
	if err != nil {
		t.Fatalf("building plugin %q: %v", name, err)
	}
	info := p.Info()
	if info.Name != name {
		t.Errorf("Info().Name = %q, registered as %q", info.Name, name)
	}
	if info.Version == "" {
		t.Error("Info().Version is empty")
	}
	tools := p.Tools()
	if len(tools) == 0 {
		t.Fatal("plugin serves no tools")
	}
	seen := map[string]bool{}
	for _, tool := range tools {
		t.Run(tool.Name, func(t *testing.T) {
			if !toolName.MatchString(tool.Name) {
				t.Errorf("tool name %q is not a valid MCP tool name", tool.Name)
			}
			if seen[tool.Name] {
				t.Errorf("tool %q is served twice", tool.Name)
			}
			seen[tool.Name] = true
			if tool.Description == "" || tool.Category == "" {
				t.Errorf("tool %q needs a description and a category", tool.Name)
			}
			if tool.Handler == nil {
				t.Fatalf("tool %q has no handler", tool.Name)
			}
			if _, err := plugin.CompileSchema(tool.Name, tool.InputSchema); err != nil {
				t.Fatalf("input schema: %v", err)
			}
			if len(tool.OutputSchema) > 0 && !json.Valid(tool.OutputSchema) {
				t.Errorf("output schema is not JSON")
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("handler panicked on {}: %v", r)
					}
				}()
				ctx, cancel := context.WithCancel(t.Context())
				cancel() // a handler must not hang on a dead context either
				_, _ = tool.Handler(ctx, &plugin.Call{Tool: tool.Name, Arguments: json.RawMessage(`{}`)})
			}()
		})
	}
	return p
}
