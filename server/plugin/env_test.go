package plugin

import (
	"strings"
	"testing"
)

func TestEnvRefusal(t *testing.T) {
	own := []string{"BUNDLE_TOKEN"}
	for name, c := range map[string]struct {
		env  string
		want string // in the reason; "" allowed
	}{
		"allow/plain":              {"GITHUB_TOKEN", ""},
		"allow/lower-case":         {"call_log", ""},
		"allow/google-not-go":      {"GOOGLE_API_KEY", ""},
		"allow/locale-like":        {"APP_LANG", ""},
		"allow/node-env":           {"NODE_ENV", ""},
		"allow/python-unbuffered":  {"PYTHONUNBUFFERED", ""},
		"allow/rust-log":           {"RUST_LOG", ""},
		"allow/github-not-git":     {"GITHUB_PERSONAL_ACCESS_TOKEN", ""},
		"deny/node-extra-ca":       {"NODE_EXTRA_CA_CERTS", "loads code"},
		"deny/pythonioencoding":    {"PYTHONIOENCODING", "loads code"},
		"deny/ld-preload":          {"LD_PRELOAD", "loads code"},
		"deny/ld-lower":            {"ld_preload", "loads code"},
		"deny/dyld":                {"DYLD_INSERT_LIBRARIES", "loads code"},
		"deny/node-options":        {"NODE_OPTIONS", "loads code"},
		"deny/bash-env":            {"BASH_ENV", "loads code"},
		"deny/env":                 {"ENV", "loads code"},
		"deny/pythonstartup":       {"PYTHONSTARTUP", "loads code"},
		"deny/pythonpath":          {"PYTHONPATH", "loads code"},
		"deny/perl5opt":            {"PERL5OPT", "loads code"},
		"deny/rubyopt":             {"RUBYOPT", "loads code"},
		"deny/git-ssh-command":     {"GIT_SSH_COMMAND", "loads code"},
		"deny/git-config":          {"GIT_CONFIG_COUNT", "loads code"},
		"deny/java-tool-options":   {"JAVA_TOOL_OPTIONS", "loads code"},
		"deny/goflags":             {"GOFLAGS", "loads code"},
		"deny/gocacheprog":         {"GOCACHEPROG", "loads code"},
		"deny/goauth":              {"GOAUTH", "loads code"},
		"deny/gosumdb":             {"GOSUMDB", "loads code"},
		"deny/cgo-ldflags":         {"CGO_LDFLAGS", "loads code"},
		"deny/pip-index":           {"PIP_INDEX_URL", "loads code"},
		"deny/uv-index":            {"UV_INDEX_URL", "loads code"},
		"deny/gem-path":            {"GEM_PATH", "loads code"},
		"deny/maven-opts":          {"MAVEN_OPTS", "loads code"},
		"deny/coreclr-profiler":    {"CORECLR_PROFILER_PATH", "loads code"},
		"deny/zdotdir":             {"ZDOTDIR", "loads code"},
		"deny/sslkeylogfile":       {"SSLKEYLOGFILE", "loads code"},
		"deny/deno-dir":            {"DENO_DIR", "loads code"},
		"deny/erl-aflags":          {"ERL_AFLAGS", "loads code"},
		"deny/cc":                  {"CC", "loads code"},
		"deny/google-lower-is-go":  {"google_x", "loads code"},
		"allow/gomaxprocs":         {"GOMAXPROCS", ""},
		"allow/google-credentials": {"GOOGLE_APPLICATION_CREDENTIALS", ""},
		"deny/path":                {"PATH", "loads code"},
		"deny/proxy-lower":         {"https_proxy", "loads code"},
		"deny/otel-headers":        {"OTEL_EXPORTER_OTLP_HEADERS", "server's own"},
		"deny/otel-lower":          {"otel_exporter_otlp_headers", "server's own"},
		"deny/mcp-secure":          {"MCP_SECURE_NO_LANDLOCK", "server's own"},
		"deny/bundle-token":        {"BUNDLE_TOKEN", "server's own"},
		"deny/not-a-name":          {"A-B", "not a variable name"},
		"deny/empty":               {"", "not a variable name"},
		"deny/starts-with-a-digit": {"1X", "not a variable name"},
	} {
		t.Run(name, func(t *testing.T) {
			got := EnvRefusal(c.env, own)
			if c.want == "" {
				if got != "" {
					t.Fatalf("EnvRefusal(%q) = %q, want allowed", c.env, got)
				}
				if err := CheckEnv(c.env, own); err != nil {
					t.Fatalf("CheckEnv: %v", err)
				}
				return
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("EnvRefusal(%q) = %q, want %q", c.env, got, c.want)
			}
			if err := CheckEnv(c.env, own); err == nil || !strings.Contains(err.Error(), c.env) {
				t.Fatalf("CheckEnv(%q) = %v, want an error naming it", c.env, err)
			}
		})
	}
}

func TestIsOwnEnv(t *testing.T) {
	for env, want := range map[string]bool{
		"OTEL_SERVICE_NAME": true, "MCP_SECURE_PPROF": true, "BUNDLE_TOKEN": true,
		"NODE_OPTIONS": false, "TOKEN": false, "bundle_token": false,
	} {
		if got := IsOwnEnv(env, []string{"BUNDLE_TOKEN"}); got != want {
			t.Errorf("IsOwnEnv(%q) = %v, want %v", env, got, want)
		}
	}
}
