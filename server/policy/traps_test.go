package policy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPathPatterns covers the traps of path globs: relative patterns,
// trailing slashes and glob characters in expanded values.
func TestPathPatterns(t *testing.T) {
	vars := env(map[string]string{"HOME": "/home/proj[1]", "WS": "/srv/a*b", "EMPTY": ""})
	for name, tc := range map[string]struct {
		allowed, denied []string
		wantAllowed     []any
		wantDenied      []any
		wantErr         string // substring; "" means it loads
	}{
		"allow/absolute":               {allowed: []string{"/srv/ws/**"}, wantAllowed: []any{"/srv/ws/**", "/srv/ws"}, wantDenied: []any{}},
		"allow/anywhere":               {denied: []string{"**/.env", "**/*.pem"}, wantAllowed: []any{}, wantDenied: []any{"**/.env", "**/*.pem"}},
		"allow/trailing-slash-abs":     {allowed: []string{"/srv/ws/"}, wantAllowed: []any{"/srv/ws/**", "/srv/ws"}, wantDenied: []any{}},
		"allow/trailing-slash-any":     {denied: []string{"**/secrets/"}, wantAllowed: []any{}, wantDenied: []any{"**/secrets/**", "**/secrets"}},
		"allow/root-slash":             {allowed: []string{"/"}, wantAllowed: []any{"/**", "/"}, wantDenied: []any{}},
		"allow/home-escaped":           {allowed: []string{"~/**"}, wantAllowed: []any{`/home/proj\[1\]/**`, `/home/proj\[1\]`}, wantDenied: []any{}},
		"allow/var-escaped":            {allowed: []string{"${WS}/x/**"}, wantAllowed: []any{`/srv/a\*b/x/**`, `/srv/a\*b/x`}, wantDenied: []any{}},
		"allow/default-escaped":        {allowed: []string{"${NOPE:-/srv/[x]}/**"}, wantAllowed: []any{`/srv/\[x\]/**`, `/srv/\[x\]`}, wantDenied: []any{}},
		"allow/literal-glob-kept":      {allowed: []string{"/srv/[ab]/**"}, wantAllowed: []any{"/srv/[ab]/**", "/srv/[ab]"}, wantDenied: []any{}},
		"allow/deny-escaped-lowercase": {denied: []string{"${HOME}/Secret.txt"}, wantAllowed: []any{}, wantDenied: []any{`/home/proj\[1\]/secret.txt`}},
		"deny/relative-name":           {denied: []string{".env"}, wantErr: `p.yaml:4: filesystem.denied_paths[0]: ".env" is relative: write an absolute path`},
		"deny/relative-glob":           {denied: []string{"/ok", "*.pem"}, wantErr: `filesystem.denied_paths[1]: "*.pem" is relative`},
		"deny/relative-dir":            {allowed: []string{"secrets/"}, wantErr: `filesystem.allowed_paths[0]: "secrets/" is relative`},
		"deny/dot-relative":            {allowed: []string{"./ws/**"}, wantErr: `or **/ws/** to match it in any directory`},
		"deny/star-relative":           {allowed: []string{"*/x"}, wantErr: `is relative`},
		"deny/empty-var":               {allowed: []string{"${EMPTY}/x"}, wantErr: "variable EMPTY is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			src := "filesystem:\n  allowed_paths: " + yamlList(tc.allowed) + "\n"
			src += "  denied_paths:\n"
			for _, d := range tc.denied {
				src += "    - " + quoteYAML(d) + "\n"
			}
			p, err := Parse("p.yaml", "/etc/mcp", []byte(src), vars)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fs := p.Data()["filesystem"].(map[string]any)
			if diff := cmp.Diff(tc.wantAllowed, fs["allowed_paths"]); diff != "" {
				t.Errorf("allowed_paths (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDenied, fs["denied_paths"]); diff != "" {
				t.Errorf("denied_paths (-want +got):\n%s", diff)
			}
		})
	}
}

func yamlList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quoteYAML(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func quoteYAML(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }

// TestRootsUnescape keeps the filesystem roots literal: an escaped glob
// character is part of the directory's name.
func TestRootsUnescape(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("filesystem:\n  allowed_paths: [\"~/ws/**\", \"/srv/[ab]/x/**\"]\n"), env(map[string]string{"HOME": "/home/proj[1]"}))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/home/proj[1]/ws", "/srv"}, p.Roots()); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}
}

func TestGlobEscape(t *testing.T) {
	for in, want := range map[string]string{
		"/plain/dir":  "/plain/dir",
		"/a[1]/b":     `/a\[1\]/b`,
		"/x*y?z":      `/x\*y\?z`,
		"/{a,b}":      `/\{a,b\}`,
		`/back\slash`: `/back\\slash`,
	} {
		if got := GlobEscape(in); got != want {
			t.Errorf("GlobEscape(%q) = %q, want %q", in, got, want)
		}
		lit, ok := unescapeGlob(GlobEscape(in))
		if !ok || lit != in {
			t.Errorf("unescapeGlob(GlobEscape(%q)) = %q, %v", in, lit, ok)
		}
	}
}

// TestDefaultedSections: a section the file leaves out gets its safe
// default, and the policy says which ones it defaulted.
func TestDefaultedSections(t *testing.T) {
	for name, tc := range map[string]struct {
		src          string
		wantSections []string
		noCommands   bool
	}{
		"allow/empty-mapping":    {src: "{}\n", wantSections: []string{"network", "filesystem", "commands", "tools", "audit", "plugins"}, noCommands: true},
		"allow/version-only":     {src: "version: \"1.0\"\n", wantSections: []string{"network", "filesystem", "commands", "tools", "audit", "plugins"}, noCommands: true},
		"allow/commands-present": {src: "commands:\n  allowed: [git]\nnetwork:\nfilesystem:\ntools:\naudit:\nplugins:\n", wantSections: nil},
		"deny/no-commands-section": {src: "network:\n  allow_dns: false\nfilesystem:\n  allowed_paths: [/srv/**]\n",
			wantSections: []string{"commands", "tools", "audit", "plugins"}, noCommands: true},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse("p.yaml", "/", []byte(tc.src), env(map[string]string{"HOME": "/h"}))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range p.Defaulted() {
				sec, _, _ := strings.Cut(d, ":")
				got = append(got, sec)
			}
			if diff := cmp.Diff(tc.wantSections, got); diff != "" {
				t.Errorf("defaulted (-want +got):\n%s", diff)
			}
			d := p.Data()
			if tc.noCommands {
				if allowed, ok := d["commands"].(map[string]any)["allowed"].([]any); !ok || len(allowed) != 0 {
					t.Errorf("commands.allowed = %#v, want an empty allowlist", d["commands"].(map[string]any)["allowed"])
				}
			}
			if slices.Contains(got, "network") {
				n := d["network"].(map[string]any)
				if len(n["allowed_ranges"].([]any)) != 0 || len(n["endpoints"].(map[string]any)) != 0 || n["allow_dns"] != false {
					t.Errorf("defaulted network allows something: %v", n)
				}
			}
			if slices.Contains(got, "filesystem") && len(p.Roots()) != 0 {
				t.Errorf("defaulted filesystem has roots %v", p.Roots())
			}
		})
	}
}

// TestReferenceHasNoDefaults: the reference policy still loads unchanged
// and leaves out only plugins.
func TestReferenceHasNoDefaults(t *testing.T) {
	data, err := os.ReadFile("testdata/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("reference.yaml", "/etc/mcp", data, env(map[string]string{"HOME": "/home/ann"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Defaulted(); len(got) != 1 || !strings.HasPrefix(got[0], "plugins:") {
		t.Errorf("defaulted = %q", got)
	}
}

func TestToolPatternWarnings(t *testing.T) {
	tools := []string{"list_bugs", "list_categories", "web_search", "add_bug"}
	for name, tc := range map[string]struct {
		src  string
		want []string
	}{
		"allow/all-match":    {src: "tools:\n  allowed: [\"list_*\", web_search]\n  denied: [add_*]\n"},
		"allow/star":         {src: "tools:\n  allowed: [\"*\"]\n"},
		"allow/no-section":   {src: "{}"},
		"deny/upper-denied":  {src: "tools:\n  denied:\n    - \"LIST_*\"\n", want: []string{`p.yaml:3: tools.denied[0]: "LIST_*" matches no tool; did you mean list_*? (tool names are case-sensitive)`}},
		"deny/upper-allowed": {src: "tools:\n  allowed: [Web_Search]\n", want: []string{`p.yaml:2: tools.allowed[0]: "Web_Search" matches no tool; did you mean web_search? (tool names are case-sensitive)`}},
		"deny/typo":          {src: "tools:\n  denied: [serach_*]\n", want: []string{`p.yaml:2: tools.denied[0]: "serach_*" matches no tool`}},
		// An upstream server's tools are known once it has started.
		"allow/upstream-prefix": {src: "servers:\n  files:\n    command: node\n  gh:\n    command: node\n    prefix: \"git_\"\ntools:\n  denied: [files__write_file, \"git_push*\", filez__x]\n",
			want: []string{`p.yaml:8: tools.denied[2]: "filez__x" matches no tool`}},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse("p.yaml", "/", []byte(tc.src), env(map[string]string{"HOME": "/h"}))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, p.Warnings(tools)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorfLocatesKeys(t *testing.T) {
	src := "version: \"1.0\"\nplugins:\n  bugtracker:\n    synchronous: sometimes\n    database: /x.db\n"
	p, err := Parse("p.yaml", "/", []byte(src), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"plugins.bugtracker.synchronous": "p.yaml:4: plugins.bugtracker.synchronous: bad",
		"plugins.bugtracker.database":    "p.yaml:5: plugins.bugtracker.database: bad",
		"plugins.bugtracker.missing":     "p.yaml:3: plugins.bugtracker.missing: bad",
		"plugins.other":                  "p.yaml:2: plugins.other: bad",
	} {
		if got := p.Errorf(key, "bad").Error(); got != want {
			t.Errorf("Errorf(%q) = %q, want %q", key, got, want)
		}
	}
}
