package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestTelemetrySection(t *testing.T) {
	vars := env(map[string]string{"HOME": "/h", "DL_TOKEN": "tok-1", "OTLP_KEY": "k-2"})
	t.Run("ok/full", func(t *testing.T) {
		src := `telemetry:
  enabled: true
  endpoint: "http://127.0.0.1:4318"
  protocol: http/protobuf
  headers: {x-api-key: "${OTLP_KEY}"}
  service_name: mcp-prod
  sampler: parentbased_traceidratio
  sampler_arg: 0.2
  shutdown_timeout: 3
  decision_logs:
    service:
      url: "https://dl.example.com/v1"
      credentials:
        bearer: {token: "${DL_TOKEN}"}
    reporting:
      min_delay_seconds: 5
      max_delay_seconds: 10
      buffer_size_limit_bytes: 1048576
`
		p, err := Parse("p.yaml", "/", []byte(src), vars)
		if err != nil {
			t.Fatal(err)
		}
		tel := p.Telemetry
		if !*tel.Enabled || tel.Headers["x-api-key"] != "k-2" || *tel.SamplerArg != 0.2 ||
			tel.DecisionLogs.Service.Credentials.Bearer.Token != "tok-1" || *tel.DecisionLogs.Reporting.MaxDelaySeconds != 10 {
			t.Errorf("telemetry decoded as %+v", tel)
		}
		if _, ok := p.Data()["telemetry"]; ok {
			t.Error("telemetry settings (credentials) reached the Rego data document")
		}
	})
	tests := map[string]struct{ src, key, msg string }{
		"bad/protocol":          {"telemetry:\n  protocol: http/json\n", "telemetry.protocol", "unknown protocol"},
		"bad/endpoint-scheme":   {"telemetry:\n  endpoint: \"ftp://x\"\n", "telemetry.endpoint", "not an http"},
		"bad/endpoint-creds":    {"telemetry:\n  endpoint: \"http://u:p@x\"\n", "telemetry.endpoint", "credentials in the URL"},
		"bad/sampler":           {"telemetry:\n  sampler: sometimes\n", "telemetry.sampler", "unknown sampler"},
		"bad/sampler-arg":       {"telemetry:\n  sampler_arg: 1.5\n", "telemetry.sampler_arg", "outside 0-1"},
		"bad/shutdown":          {"telemetry:\n  shutdown_timeout: 600\n", "telemetry.shutdown_timeout", "outside"},
		"bad/unknown-key":       {"telemetry:\n  exporter: otlp\n", "telemetry.exporter", "unknown key"},
		"bad/dl-no-url":         {"telemetry:\n  decision_logs:\n    reporting: {min_delay_seconds: 1, max_delay_seconds: 2}\n", "telemetry.decision_logs.service.url", "needs a url"},
		"bad/dl-delays":         {"telemetry:\n  decision_logs:\n    service: {url: \"http://x\"}\n    reporting: {min_delay_seconds: 5, max_delay_seconds: 2}\n", "telemetry.decision_logs.reporting.min_delay_seconds", "above"},
		"bad/dl-one-delay":      {"telemetry:\n  decision_logs:\n    service: {url: \"http://x\"}\n    reporting: {min_delay_seconds: 5}\n", "telemetry.decision_logs.reporting", "both"},
		"bad/dl-buffer":         {"telemetry:\n  decision_logs:\n    service: {url: \"http://x\"}\n    reporting: {buffer_size_limit_bytes: 0}\n", "telemetry.decision_logs.reporting.buffer_size_limit_bytes", "not positive"},
		"bad/dl-unset-token":    {"telemetry:\n  decision_logs:\n    service:\n      url: \"http://x\"\n      credentials: {bearer: {token: \"${NOPE}\"}}\n", "telemetry.decision_logs.service.credentials.bearer.token", "NOPE"},
		"bad/dl-empty-token":    {"telemetry:\n  decision_logs:\n    service:\n      url: \"http://x\"\n      credentials: {bearer: {token: \"\"}}\n", "telemetry.decision_logs.service.credentials.bearer.token", "empty token"},
		"bad/dl-url-scheme":     {"telemetry:\n  decision_logs:\n    service: {url: \"file:///tmp/x\"}\n", "telemetry.decision_logs.service.url", "not an http"},
		"bad/headers-not-a-map": {"telemetry:\n  headers: [a]\n", "telemetry.headers", "mapping"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("p.yaml", "/", []byte(tc.src), vars)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *policy.Error", err)
			}
			if pe.Key != tc.key || !strings.Contains(pe.Msg, tc.msg) || pe.Line == 0 {
				t.Errorf("got %s:%d %s: %s; want key %s, message containing %q", pe.File, pe.Line, pe.Key, pe.Msg, tc.key, tc.msg)
			}
		})
	}
}
