package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/telemetry"
)

// observability is the telemetry a serve run wires in: OpenTelemetry
// export and the decision-log upload, each off unless configured.
type observability struct {
	tel *telemetry.Telemetry
	dl  *telemetry.DecisionLogs
	log *slog.Logger
}

// startTelemetry sets up what the policy's telemetry section and the
// OTEL_* environment ask for.
func startTelemetry(ctx context.Context, pol *policy.Policy, log *slog.Logger) (*observability, error) {
	t := pol.Telemetry
	cfg, err := telemetry.Resolve(os.Getenv, telemetry.Settings{
		Enabled: t.Enabled, Endpoint: t.Endpoint, Protocol: t.Protocol, Headers: t.Headers,
		ServiceName: t.ServiceName, Sampler: t.Sampler, SamplerArg: t.SamplerArg,
		ShutdownTimeout: time.Duration(t.ShutdownTimeout * float64(time.Second)),
	})
	if err != nil {
		return nil, err
	}
	cfg.ServiceVersion = version
	tel, err := telemetry.New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	o := &observability{tel: tel, log: log}
	if tel.Enabled() {
		log.Info("telemetry: exporting spans and metrics over OTLP", "protocol", cfg.Protocol, "why", cfg.Why)
	}
	if dl := t.DecisionLogs; dl != nil {
		c := telemetry.DecisionLogConfig{
			URL: dl.Service.URL, Headers: dl.Service.Headers,
			ResponseHeaderTimeoutSeconds: dl.Service.ResponseHeaderTimeoutSeconds,
			MinDelaySeconds:              int64p(dl.Reporting.MinDelaySeconds),
			MaxDelaySeconds:              int64p(dl.Reporting.MaxDelaySeconds),
			BufferSizeLimitBytes:         int64p(dl.Reporting.BufferSizeLimitBytes),
			UploadSizeLimitBytes:         int64p(dl.Reporting.UploadSizeLimitBytes),
			Labels:                       map[string]string{"service": "mcp-secure", "version": version},
		}
		if b := dl.Service.Credentials.Bearer; b != nil {
			c.BearerToken, c.BearerScheme = b.Token, b.Scheme
		}
		if o.dl, err = telemetry.NewDecisionLogs(ctx, c, log); err != nil {
			_ = tel.Shutdown(ctx)
			return nil, err
		}
		if tel.Enabled() {
			if err := o.dl.Observe(tel.MeterProvider()); err != nil {
				log.Warn("telemetry: decision-log drop counter", "err", err)
			}
		}
		log.Info("telemetry: uploading decision events", "service", audit.NewRedactor(nil).String(dl.Service.URL))
	}
	return o, nil
}

func int64p(p *int) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

// tee is the audit log's Tee: the decision-log upload, if any.
func (o *observability) tee() func([]byte) {
	if o.dl == nil {
		return nil
	}
	return o.dl.Tee
}

// auditor wraps the audit log with spans, metrics and trace ids when
// tracing is on; otherwise it is the audit log itself.
func (o *observability) auditor(l *audit.Logger, key []byte) telemetry.Auditor {
	if !o.tel.Enabled() {
		return l
	}
	return telemetry.Audit(l, o.tel.TracerProvider(), o.tel.MeterProvider(), audit.NewRedactor(key))
}

// shutdown flushes the upload and the exporters, each within its bound.
// Call it after the audit log is closed.
func (o *observability) shutdown(ctx context.Context) {
	if o.dl != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.tel.Config().ShutdownTimeout)
		if err := o.dl.Stop(sctx); err != nil {
			o.log.Warn("telemetry: decision logs", "err", err)
		}
		if n := o.dl.Dropped(); n > 0 {
			o.log.Warn("telemetry: decision events dropped before upload (buffer full)", "dropped", n)
		}
		cancel()
	}
	if err := o.tel.Shutdown(ctx); err != nil {
		o.log.Warn("telemetry: flush at shutdown", "err", err)
	}
}
