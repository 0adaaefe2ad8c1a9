package policy

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Telemetry is the telemetry section: OpenTelemetry export of spans and
// metrics, and the upload of decision events to a service that speaks
// OPA's decision-log API. Absent, the OTEL_* environment decides, and
// nothing leaves the process unless an OTLP endpoint is set there.
type Telemetry struct {
	// Enabled forces export on (true) or off (false, whatever the
	// environment says); absent, an OTLP endpoint in the environment
	// turns it on.
	Enabled *bool `yaml:"enabled"`
	// Endpoint overrides OTEL_EXPORTER_OTLP_ENDPOINT (http:// or
	// https:// URL).
	Endpoint string `yaml:"endpoint" policy:"path"`
	// Protocol overrides OTEL_EXPORTER_OTLP_PROTOCOL: grpc or
	// http/protobuf.
	Protocol string `yaml:"protocol"`
	// Headers are added to every export request (${VAR} expands), on top
	// of OTEL_EXPORTER_OTLP_HEADERS.
	Headers map[string]string `yaml:"headers" policy:"path"`
	// ServiceName overrides OTEL_SERVICE_NAME.
	ServiceName string `yaml:"service_name"`
	// Sampler and SamplerArg override OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG.
	Sampler    string   `yaml:"sampler"`
	SamplerArg *float64 `yaml:"sampler_arg"`
	// ShutdownTimeout bounds the flush at shutdown, in seconds (default
	// 5).
	ShutdownTimeout float64 `yaml:"shutdown_timeout"`
	// DecisionLogs uploads every audit record to an OPA decision-log
	// service; absent, nothing is uploaded.
	DecisionLogs *DecisionLogs `yaml:"decision_logs"`
}

// DecisionLogs is telemetry.decision_logs, in the shape of OPA's
// services and decision_logs configuration.
type DecisionLogs struct {
	Service   DecisionLogService   `yaml:"service"`
	Reporting DecisionLogReporting `yaml:"reporting"`
}

// DecisionLogService is where decision events go: OPA's service
// configuration (url, headers, credentials.bearer).
type DecisionLogService struct {
	URL         string                 `yaml:"url" policy:"path"`
	Headers     map[string]string      `yaml:"headers" policy:"path"`
	Credentials DecisionLogCredentials `yaml:"credentials"`
	// ResponseHeaderTimeoutSeconds bounds one upload (default 10).
	ResponseHeaderTimeoutSeconds int `yaml:"response_header_timeout_seconds"`
}

// DecisionLogCredentials are a service's credentials; write the token as
// ${VAR} so it comes from the environment.
type DecisionLogCredentials struct {
	Bearer *BearerToken `yaml:"bearer"`
}

// BearerToken is OPA's credentials.bearer.
type BearerToken struct {
	Token  string `yaml:"token" policy:"path"`
	Scheme string `yaml:"scheme"`
}

// DecisionLogReporting is OPA's decision_logs.reporting.
type DecisionLogReporting struct {
	MinDelaySeconds      *int `yaml:"min_delay_seconds"`
	MaxDelaySeconds      *int `yaml:"max_delay_seconds"`
	BufferSizeLimitBytes *int `yaml:"buffer_size_limit_bytes"`
	UploadSizeLimitBytes *int `yaml:"upload_size_limit_bytes"`
}

// Telemetry protocols and samplers accepted in the policy (the OTel
// specification's names).
var (
	TelemetryProtocols = []string{"grpc", "http/protobuf"}
	TelemetrySamplers  = []string{"always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}
)

const maxTelemetryShutdown = 60

func (p *Policy) validateTelemetry(bad func(key, format string, args ...any) error) error {
	t := &p.Telemetry
	if t.Endpoint != "" {
		if err := checkHTTPURL(t.Endpoint); err != nil {
			return bad("telemetry.endpoint", "%v", err)
		}
	}
	if t.Protocol != "" && !slices.Contains(TelemetryProtocols, t.Protocol) {
		return bad("telemetry.protocol", "unknown protocol %q (%s)", t.Protocol, strings.Join(TelemetryProtocols, " or "))
	}
	if t.Sampler != "" && !slices.Contains(TelemetrySamplers, t.Sampler) {
		return bad("telemetry.sampler", "unknown sampler %q (known: %s)", t.Sampler, strings.Join(TelemetrySamplers, ", "))
	}
	if t.SamplerArg != nil && (*t.SamplerArg < 0 || *t.SamplerArg > 1) {
		return bad("telemetry.sampler_arg", "ratio %v is outside 0-1", *t.SamplerArg)
	}
	if t.ShutdownTimeout < 0 || t.ShutdownTimeout > maxTelemetryShutdown {
		return bad("telemetry.shutdown_timeout", "%v s is outside 0-%d s", t.ShutdownTimeout, maxTelemetryShutdown)
	}
	for k := range t.Headers {
		if strings.TrimSpace(k) == "" {
			return bad("telemetry.headers", "empty header name")
		}
	}
	dl := t.DecisionLogs
	if dl == nil {
		return nil
	}
	if dl.Service.URL == "" {
		return bad("telemetry.decision_logs.service.url", "a decision-log service needs a url")
	}
	if err := checkHTTPURL(dl.Service.URL); err != nil {
		return bad("telemetry.decision_logs.service.url", "%v", err)
	}
	if b := dl.Service.Credentials.Bearer; b != nil && b.Token == "" {
		return bad("telemetry.decision_logs.service.credentials.bearer.token", "empty token (write ${VAR} to take it from the environment)")
	}
	if dl.Service.ResponseHeaderTimeoutSeconds < 0 {
		return bad("telemetry.decision_logs.service.response_header_timeout_seconds", "negative timeout")
	}
	r := dl.Reporting
	for _, f := range []struct {
		key string
		v   *int
	}{
		{"min_delay_seconds", r.MinDelaySeconds}, {"max_delay_seconds", r.MaxDelaySeconds},
		{"buffer_size_limit_bytes", r.BufferSizeLimitBytes}, {"upload_size_limit_bytes", r.UploadSizeLimitBytes},
	} {
		if f.v != nil && *f.v <= 0 {
			return bad("telemetry.decision_logs.reporting."+f.key, "%d is not positive", *f.v)
		}
	}
	if r.MinDelaySeconds != nil && r.MaxDelaySeconds != nil && *r.MinDelaySeconds > *r.MaxDelaySeconds {
		return bad("telemetry.decision_logs.reporting.min_delay_seconds", "min_delay_seconds %d is above max_delay_seconds %d", *r.MinDelaySeconds, *r.MaxDelaySeconds)
	}
	if (r.MinDelaySeconds == nil) != (r.MaxDelaySeconds == nil) {
		return bad("telemetry.decision_logs.reporting", "give both min_delay_seconds and max_delay_seconds, or neither")
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials in the URL: use headers or credentials", s)
	}
	return nil
}
