package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

func TestUpstreamSpec(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"GH_TOKEN": "gh-1", "REGION": "eu", "EMPTY": "",
			"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer x", "BUNDLE_TOKEN": "b-1", "MCP_SECURE_WEBSEARCH_URL": "u"}[k]
		return v, ok
	}
	own := []string{"BUNDLE_TOKEN"}
	paths, ports := &[]string{"/ws/data"}, &[]int{443}
	t.Run("ok", func(t *testing.T) {
		s := policy.Server{Command: "node", Args: []string{"/code/server.mjs", "--stdio"},
			Env:     map[string]string{"TOKEN": "${GH_TOKEN}", "URL": "https://${REGION}.example/${REGION}", "MODE": "literal", "E": "${EMPTY}"},
			Sandbox: policy.ServerSandbox{Paths: paths, Ports: ports, Read: []string{"/code"}}}
		spec, err := upstreamSpec("gh", s, lookup, own)
		if err != nil {
			t.Fatal(err)
		}
		want := &plugin.LaunchSpec{
			Server: "gh", Path: "node", Args: []string{"node", "/code/server.mjs", "--stdio"},
			Env:      map[string]string{"TOKEN": "gh-1", "URL": "https://eu.example/eu", "MODE": "literal", "E": ""},
			EnvFrom:  []string{"EMPTY", "GH_TOKEN", "REGION"},
			ReadOnly: append(slices.Clone(upstreamReadOnly), "/code"),
			Paths:    paths, Ports: ports, LongLived: true,
		}
		if diff := cmp.Diff(want, spec); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if spec.Dir != "" || spec.Plugin != "" {
			t.Errorf("an upstream has no plugin directory: %+v", spec)
		}
	})
	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"deny/missing-variable":    {map[string]string{"TOKEN": "${NOT_SET}"}, "servers.gh.env.TOKEN takes ${NOT_SET}, which is not set"},
		"deny/node-options":        {map[string]string{"NODE_OPTIONS": "--require /x.js"}, "servers.gh.env.NODE_OPTIONS is refused"},
		"deny/ld-preload":          {map[string]string{"LD_PRELOAD": "/x.so"}, "servers.gh.env.LD_PRELOAD is refused"},
		"deny/bash-env":            {map[string]string{"BASH_ENV": "/x"}, "servers.gh.env.BASH_ENV is refused"},
		"deny/pythonstartup":       {map[string]string{"PYTHONSTARTUP": "/x.py"}, "servers.gh.env.PYTHONSTARTUP is refused"},
		"deny/otel-key":            {map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=b"}, "servers.gh.env.OTEL_EXPORTER_OTLP_HEADERS is refused: it is the server's own"},
		"deny/otel-source":         {map[string]string{"H": "${OTEL_EXPORTER_OTLP_HEADERS}"}, "servers.gh.env.H takes ${OTEL_EXPORTER_OTLP_HEADERS}, the server's own"},
		"deny/bundle-token-source": {map[string]string{"T": "Bearer ${BUNDLE_TOKEN}"}, "servers.gh.env.T takes ${BUNDLE_TOKEN}, the server's own"},
		"deny/bundle-token-key":    {map[string]string{"BUNDLE_TOKEN": "x"}, "servers.gh.env.BUNDLE_TOKEN is refused"},
		"deny/mcp-secure-source":   {map[string]string{"U": "${MCP_SECURE_WEBSEARCH_URL}"}, "servers.gh.env.U takes ${MCP_SECURE_WEBSEARCH_URL}, the server's own"},
		"deny/own-unset-source":    {map[string]string{"U": "${OTEL_UNSET}"}, "takes ${OTEL_UNSET}, the server's own"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := upstreamSpec("gh", policy.Server{Command: "node", Env: c.env}, lookup, own)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
