package guard

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCarveProtected(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"logs", "sub/deep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a.txt", "logs/audit.log", "logs/audit.log.1", "logs/other", "sub/deep/x", "policy.yaml"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	j := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(root, n))
		}
		slices.Sort(out)
		return out
	}
	for name, tc := range map[string]struct {
		protected []ProtectedPath
		want      []string
	}{
		"allow/nothing-protected":   {nil, []string{root}},
		"allow/protected-elsewhere": {[]ProtectedPath{{Path: "/var/log/x"}, {Path: root + "-sibling"}}, []string{root}},
		"deny/root-itself":          {[]ProtectedPath{{Path: root}}, nil},
		"deny/above-root":           {[]ProtectedPath{{Path: filepath.Dir(root)}}, nil},
		"deny/log-directory": {[]ProtectedPath{{Path: filepath.Join(root, "logs")}, {Path: filepath.Join(root, "policy.yaml")}},
			j("a.txt", "sub")},
		"deny/log-files-by-prefix": {[]ProtectedPath{{Path: filepath.Join(root, "logs/audit.log"), Prefix: true}},
			j("a.txt", "logs/other", "policy.yaml", "sub")},
		"deny/deep-file": {[]ProtectedPath{{Path: filepath.Join(root, "sub/deep/x")}},
			j("a.txt", "logs", "policy.yaml")},
	} {
		t.Run(name, func(t *testing.T) {
			got := carve(root, tc.protected)
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for _, g := range got {
				if g == filepath.Join(root, "link") {
					t.Error("a symlink was granted")
				}
			}
		})
	}
}
