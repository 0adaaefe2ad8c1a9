package external

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/plugin/plugintest"
)

// recordingHost is a Host that keeps an audit log of plugins left out.
type recordingHost struct {
	*plugintest.Host
	left []plugin.LeftOut
}

var _ plugin.LeftOutRecorder = (*recordingHost)(nil)

func (h *recordingHost) RecordLeftOut(_ context.Context, l plugin.LeftOut) error {
	h.left = append(h.left, l)
	return nil
}

// TestNewRecordsLeftOut: every plugin directory left out at start-up is
// recorded through the host, by plugin name (when the manifest gives
// one), manifest and reason; a good one beside them is served.
func TestNewRecordsLeftOut(t *testing.T) {
	good := writePlugin(t, okManifest, 0o755)
	mismatch := writePlugin(t, strings.Replace(okManifest, "name: demo", "name: pinned", 1)+"sha256: "+strings.Repeat("ab", 32)+"\n", 0o755)
	missing := writePlugin(t, strings.Replace(strings.Replace(okManifest, "name: demo", "name: gone", 1), "executable: run", "executable: nothere", 1), 0o755)
	empty := t.TempDir()
	dirs, _ := json.Marshal([]string{good, mismatch, missing, empty})
	h := &recordingHost{Host: &plugintest.Host{Settings: map[string]map[string]string{Name: {DirsSetting: string(dirs)}}}}
	p, err := New(h)
	if err != nil {
		t.Fatal(err)
	}
	if tools := p.Tools(); len(tools) != 1 || tools[0].Name != "demo_tool" {
		t.Fatalf("tools = %v, want demo_tool only", tools)
	}
	want := []struct{ plugin, dir, reason string }{
		{"pinned", mismatch, "sha256 mismatch"},
		{"gone", missing, "executable " + filepath.Join(missing, "nothere")},
		{"", empty, "cannot read the manifest"},
	}
	if len(h.left) != len(want) {
		t.Fatalf("recorded %+v, want %d", h.left, len(want))
	}
	for i, w := range want {
		l := h.left[i]
		if l.Plugin != w.plugin || l.Dir != w.dir || l.Manifest != filepath.Join(w.dir, ManifestName) || !strings.Contains(l.Reason, w.reason) {
			t.Errorf("left out %d = %+v, want plugin %q dir %s saying %q", i, l, w.plugin, w.dir, w.reason)
		}
	}
}
