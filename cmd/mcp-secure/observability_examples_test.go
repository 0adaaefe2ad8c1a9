package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestObservabilityExamples: the example policy passes every start-up
// check, and the collector's pipelines name only receivers and exporters
// it defines.
func TestObservabilityExamples(t *testing.T) {
	dir := "../../examples/observability"
	t.Setenv("DECISION_LOG_TOKEN", "example-token")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_STATE_HOME", "")
	chk, err := checkPolicy(t.Context(), filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatalf("policy.yaml: %v", err)
	}
	tel := chk.pol.Telemetry
	if tel.DecisionLogs == nil || tel.DecisionLogs.Service.Credentials.Bearer.Token != "example-token" || tel.Endpoint == "" {
		t.Errorf("policy.yaml telemetry decoded as %+v", tel)
	}

	var col struct {
		Receivers map[string]any `yaml:"receivers"`
		Exporters map[string]any `yaml:"exporters"`
		Service   struct {
			Pipelines map[string]struct {
				Receivers []string `yaml:"receivers"`
				Exporters []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	readYAML(t, filepath.Join(dir, "otelcol.yaml"), &col)
	for _, want := range []string{"traces", "metrics", "logs"} {
		p, ok := col.Service.Pipelines[want]
		if !ok {
			t.Errorf("otelcol.yaml has no %s pipeline", want)
		}
		for _, r := range p.Receivers {
			if _, ok := col.Receivers[r]; !ok {
				t.Errorf("pipeline %s names undefined receiver %s", want, r)
			}
		}
		for _, e := range p.Exporters {
			if _, ok := col.Exporters[e]; !ok {
				t.Errorf("pipeline %s names undefined exporter %s", want, e)
			}
		}
	}
	if !slices.Contains(col.Service.Pipelines["traces"].Receivers, "otlp") {
		t.Error("the traces pipeline does not receive OTLP")
	}
	for _, f := range []string{"fluent-bit.yaml", "vector.yaml"} {
		var doc map[string]any
		readYAML(t, filepath.Join(dir, f), &doc)
		if len(doc) == 0 {
			t.Errorf("%s is empty", f)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if strings.Contains(string(data), "\t") {
		t.Errorf("%s has tabs", path)
	}
}
