package telemetry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Settings are the policy's overrides (the telemetry section); zero
// values leave the environment's choice.
type Settings struct {
	Enabled         *bool
	Endpoint        string
	Protocol        string
	Headers         map[string]string
	ServiceName     string
	Sampler         string
	SamplerArg      *float64
	ShutdownTimeout time.Duration
}

// Config is the resolved OpenTelemetry configuration.
type Config struct {
	// Enabled says whether spans and metrics are exported at all.
	Enabled bool
	// Why says what decided Enabled, for the start-up log.
	Why string
	// Endpoint is the policy's endpoint ("" leaves the exporters to read
	// OTEL_EXPORTER_OTLP_*ENDPOINT).
	Endpoint string
	// Protocol is grpc or http/protobuf.
	Protocol    string
	Headers     map[string]string
	ServiceName string
	// Sampler and SamplerArg are the policy's sampler ("" leaves
	// OTEL_TRACES_SAMPLER to the SDK).
	Sampler         string
	SamplerArg      float64
	ShutdownTimeout time.Duration
	// ServiceVersion is reported as service.version.
	ServiceVersion string
}

// DefaultShutdownTimeout bounds the flush at shutdown.
const DefaultShutdownTimeout = 5 * time.Second

// Resolve combines the environment (read through getenv) with the
// policy's settings, which win.
func Resolve(getenv func(string) string, s Settings) (Config, error) {
	c := Config{ShutdownTimeout: s.ShutdownTimeout, Endpoint: s.Endpoint, Headers: s.Headers,
		Sampler: s.Sampler, ServiceName: s.ServiceName}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	envEndpoint := ""
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			envEndpoint = k
			break
		}
	}
	switch disabled := strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true"); {
	case disabled:
		c.Why = "OTEL_SDK_DISABLED=true"
	case s.Enabled != nil && !*s.Enabled:
		c.Why = "telemetry.enabled: false in the policy"
	case s.Enabled != nil && *s.Enabled:
		c.Enabled, c.Why = true, "telemetry.enabled: true in the policy"
	case s.Endpoint != "":
		c.Enabled, c.Why = true, "telemetry.endpoint in the policy"
	case envEndpoint != "":
		c.Enabled, c.Why = true, envEndpoint+" is set"
	default:
		c.Why = "no OTLP endpoint configured"
	}
	c.Protocol = s.Protocol
	if c.Protocol == "" {
		c.Protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch c.Protocol {
	case "":
		c.Protocol = "http/protobuf" // the specification's default
	case "grpc", "http/protobuf":
	default:
		return c, fmt.Errorf("telemetry: unknown OTLP protocol %q (grpc or http/protobuf)", c.Protocol)
	}
	if s.SamplerArg != nil {
		c.SamplerArg = *s.SamplerArg
	} else if c.Sampler != "" {
		c.SamplerArg = 1
		if v := getenv("OTEL_TRACES_SAMPLER_ARG"); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return c, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG %q is not a ratio in 0-1", v)
			}
			c.SamplerArg = f
		}
	}
	return c, nil
}
