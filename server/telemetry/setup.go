package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is the process's OpenTelemetry setup: providers to hand to
// the server, and a bounded Shutdown that flushes them.
type Telemetry struct {
	cfg Config
	tp  *tracerProvider // this package's tracer (trace.go), not the SDK's
	mp  *meterProvider  // the SDK's, with this package's histograms (metrics.go)
}

// New sets up export as cfg says; a disabled cfg gives Off. Exporters
// connect lazily: an unreachable collector fails exports in the
// background (logged to log, rate-limited), never a call. log must not
// write to stdout.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Telemetry, error) {
	if !cfg.Enabled {
		return &Telemetry{cfg: cfg}, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The global handler would print exporter errors with the standard
	// log package; route them to the server's logger instead.
	otel.SetErrorHandler(&errorLog{log: log})
	attrs := []attribute.KeyValue{attribute.String("service.name", "mcp-secure")}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	res, err := resource.Merge(resource.NewSchemaless(attrs...), envResource(ctx))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if cfg.ServiceName != "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))); err != nil {
			return nil, fmt.Errorf("telemetry: resource: %w", err)
		}
	}
	tc, me, err := exporters(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := tc.Start(ctx); err != nil {
		return nil, fmt.Errorf("telemetry: span exporter: %w", err)
	}
	s := sampler(cfg)
	if s == nil {
		s = samplerFromEnv(os.Getenv)
	}
	tp := newTracerProvider(s, newBatcher(tc, res, batchingFromEnv(os.Getenv)))
	hists := &histograms{}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithProducer(hists)))}
	if strings.TrimSpace(os.Getenv("OTEL_METRICS_EXEMPLAR_FILTER")) == "" {
		// Exemplars (trace_based by default in the SDK) would make every
		// histogram record of a sampled call look up its span and keep a
		// sample under a lock; they stay off unless asked for.
		mopts = append(mopts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	mp := &meterProvider{sdk: sdkmetric.NewMeterProvider(mopts...), hists: hists}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"))) {
	case "delta", "lowmemory":
		mp.hists = nil // the SDK's histograms, which can be delta (metrics.go)
	}
	return &Telemetry{cfg: cfg, tp: tp, mp: mp}, nil
}

func envResource(ctx context.Context) *resource.Resource {
	r, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil && r == nil {
		return resource.Empty()
	}
	return r
}

// exporters builds the span client and the metric exporter for cfg's
// protocol. Options given here override the OTEL_EXPORTER_OTLP_*
// environment the exporters read themselves.
func exporters(ctx context.Context, cfg Config) (otlptrace.Client, sdkmetric.Exporter, error) {
	base := strings.TrimSuffix(cfg.Endpoint, "/")
	if cfg.Protocol == "grpc" {
		var topts []otlptracegrpc.Option
		var mopts []otlpmetricgrpc.Option
		if base != "" {
			topts = append(topts, otlptracegrpc.WithEndpointURL(base))
			mopts = append(mopts, otlpmetricgrpc.WithEndpointURL(base))
		}
		if len(cfg.Headers) > 0 {
			topts = append(topts, otlptracegrpc.WithHeaders(cfg.Headers))
			mopts = append(mopts, otlpmetricgrpc.WithHeaders(cfg.Headers))
		}
		se := otlptracegrpc.NewClient(topts...)
		me, err := otlpmetricgrpc.New(ctx, mopts...)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: OTLP/gRPC metric exporter: %w", err)
		}
		return se, me, nil
	}
	var topts []otlptracehttp.Option
	var mopts []otlpmetrichttp.Option
	if base != "" {
		topts = append(topts, otlptracehttp.WithEndpointURL(base+"/v1/traces"))
		mopts = append(mopts, otlpmetrichttp.WithEndpointURL(base+"/v1/metrics"))
	}
	if len(cfg.Headers) > 0 {
		topts = append(topts, otlptracehttp.WithHeaders(cfg.Headers))
		mopts = append(mopts, otlpmetrichttp.WithHeaders(cfg.Headers))
	}
	se := otlptracehttp.NewClient(topts...)
	me, err := otlpmetrichttp.New(ctx, mopts...)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: OTLP/HTTP metric exporter: %w", err)
	}
	return se, me, nil
}

// sampler is the policy's sampler, nil to leave it to
// OTEL_TRACES_SAMPLER (samplerFromEnv).
func sampler(cfg Config) sdktrace.Sampler {
	return namedSampler(cfg.Sampler, cfg.SamplerArg)
}

// samplerFromEnv is the sampler OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG name, as the SDK reads them, but DefaultSampler
// when unset or unknown, a ratio of 1 when the argument is not one (both
// reported through the OTel error handler).
func samplerFromEnv(getenv func(string) string) sdktrace.Sampler {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := 1.0
	if strings.HasSuffix(name, "traceidratio") {
		if v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				otel.Handle(fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG %q is not a ratio in 0-1, using 1", v))
			} else {
				arg = f
			}
		}
	}
	if s := namedSampler(name, arg); s != nil {
		return s
	}
	if name != "" {
		otel.Handle(fmt.Errorf("telemetry: unknown OTEL_TRACES_SAMPLER %q, using the default sampler", name))
	}
	return DefaultSampler()
}

// DefaultSampler is the sampler when neither the policy nor
// OTEL_TRACES_SAMPLER names one: every span is sampled, also under a
// client's traceparent whose sampled flag is off. The SDK's default,
// parentbased_always_on, would let any client switch off the spans of
// its own calls, denials included; an operator who wants the client to
// decide names a parentbased_* sampler.
func DefaultSampler() sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.AlwaysSample(), sdktrace.WithRemoteParentNotSampled(sdktrace.AlwaysSample()))
}

// namedSampler is the sampler of a specification name, nil for another.
func namedSampler(name string, arg float64) sdktrace.Sampler {
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(arg)
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(arg))
	}
	return nil
}

// Enabled reports whether spans and metrics are exported.
func (t *Telemetry) Enabled() bool { return t.tp != nil }

// Config is the configuration in force.
func (t *Telemetry) Config() Config { return t.cfg }

// TracerProvider is the provider to hand to the server; nil when off, so
// that the server skips its instrumentation altogether.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t.tp == nil {
		return nil
	}
	return t.tp
}

// MeterProvider is the provider to hand to the server; nil when off.
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t.mp == nil {
		return nil
	}
	return t.mp
}

// Propagator reads and writes W3C trace context (traceparent,
// tracestate).
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Shutdown flushes and stops the exporters, within the configured
// ShutdownTimeout whatever ctx allows.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var terr, merr error
	wg.Go(func() { terr = t.tp.exp.Shutdown(ctx) })
	wg.Go(func() { merr = t.mp.sdk.Shutdown(ctx) })
	wg.Wait()
	if err := errors.Join(terr, merr); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

// errorLog logs the SDK's errors (a collector that cannot be reached),
// at most one a minute.
type errorLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	last time.Time
	lost int
}

func (e *errorLog) Handle(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now := time.Now(); now.Sub(e.last) >= time.Minute {
		e.log.Warn("telemetry export failed", "err", err, "errors_not_logged", e.lost)
		e.last, e.lost = now, 0
		return
	}
	e.lost++
}
