package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	opaserver "github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"go.opentelemetry.io/otel/metric"
)

// DecisionLogConfig is where and how decision events are uploaded: the
// policy's telemetry.decision_logs, in OPA's configuration shape.
type DecisionLogConfig struct {
	URL                          string
	Headers                      map[string]string
	BearerToken, BearerScheme    string
	ResponseHeaderTimeoutSeconds int
	// Reporting: nil leaves OPA's defaults (min/max delay 300/600 s, an
	// unlimited buffer, 32 KiB uploads).
	MinDelaySeconds, MaxDelaySeconds           *int64
	BufferSizeLimitBytes, UploadSizeLimitBytes *int64
	// Labels go with every event (service, version).
	Labels map[string]string
	// QueueLength bounds the records waiting to be handed to the plugin;
	// 0 means 4096. Past it records are dropped and counted.
	QueueLength int
}

// serviceName is the name of the one service in the plugin's
// configuration.
const serviceName = "decision_logs"

// DecisionLogs uploads audit records as decision events through OPA's
// own decision-log plugin (github.com/open-policy-agent/opa/v1/plugins/logs),
// run in process on a plugins.Manager of its own with an empty store: the
// plugin batches events, gzips them, POSTs them to <url>/logs, retries
// with backoff, and drops the oldest batch when its buffer is full
// (buffer_size_limit_bytes), counting the drop.
//
// Records reach it through [DecisionLogs.Tee], which never blocks: they
// queue for a goroutine that hands them to the plugin.
type DecisionLogs struct {
	mgr    *plugins.Manager
	plugin *logs.Plugin
	m      metrics.Metrics
	log    *slog.Logger

	mu     sync.RWMutex
	closed bool
	queue  chan []byte
	done   chan struct{}
	// queueDrops counts records dropped because the queue was full.
	queueDrops atomic.Int64
}

// NewDecisionLogs starts the uploader. log must not write to stdout.
func NewDecisionLogs(ctx context.Context, cfg DecisionLogConfig, log *slog.Logger) (*DecisionLogs, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	raw, err := json.Marshal(opaConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("decision logs: %w", err)
	}
	lg := &opaLogger{log: log.With("component", "decision_logs")}
	mgr, err := plugins.New(raw, "mcp-secure", inmem.New(), plugins.Logger(lg), plugins.ConsoleLogger(lg))
	if err != nil {
		return nil, fmt.Errorf("decision logs: %w", err)
	}
	trigger := plugins.TriggerPeriodic
	pcfg, err := logs.NewConfigBuilder().WithBytes(mgr.Config.DecisionLogs).WithServices(mgr.Services()).
		WithTriggerMode(&trigger).WithLogger(lg).Parse()
	if err != nil {
		return nil, fmt.Errorf("decision logs: %w", err)
	}
	m := metrics.New()
	p := logs.New(pcfg, mgr).WithMetrics(m)
	mgr.Register(logs.Name, p)
	if err := mgr.Start(ctx); err != nil {
		return nil, fmt.Errorf("decision logs: %w", err)
	}
	n := cfg.QueueLength
	if n <= 0 {
		n = 4096
	}
	d := &DecisionLogs{mgr: mgr, plugin: p, m: m, log: log, queue: make(chan []byte, n), done: make(chan struct{})}
	go d.feed()
	return d, nil
}

func opaConfig(cfg DecisionLogConfig) map[string]any {
	svc := map[string]any{"url": cfg.URL}
	if len(cfg.Headers) > 0 {
		svc["headers"] = cfg.Headers
	}
	if cfg.BearerToken != "" {
		b := map[string]any{"token": cfg.BearerToken}
		if cfg.BearerScheme != "" {
			b["scheme"] = cfg.BearerScheme
		}
		svc["credentials"] = map[string]any{"bearer": b}
	}
	timeout := cfg.ResponseHeaderTimeoutSeconds
	if timeout <= 0 {
		timeout = 10
	}
	svc["response_header_timeout_seconds"] = timeout
	rep := map[string]any{}
	for k, v := range map[string]*int64{
		"min_delay_seconds": cfg.MinDelaySeconds, "max_delay_seconds": cfg.MaxDelaySeconds,
		"buffer_size_limit_bytes": cfg.BufferSizeLimitBytes, "upload_size_limit_bytes": cfg.UploadSizeLimitBytes,
	} {
		if v != nil {
			rep[k] = *v
		}
	}
	return map[string]any{
		"services":      map[string]any{serviceName: svc},
		"labels":        cfg.Labels,
		"decision_logs": map[string]any{"service": serviceName, "reporting": rep},
	}
}

// Tee queues one audit record (a JSON object, as written to the local
// log) for upload. It never blocks: when the queue is full the record is
// dropped and counted.
func (d *DecisionLogs) Tee(record []byte) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return
	}
	select {
	case d.queue <- record:
	default:
		d.queueDrops.Add(1)
	}
}

func (d *DecisionLogs) feed() {
	defer close(d.done)
	ctx := context.Background()
	for line := range d.queue {
		info, err := eventOf(line)
		if err != nil {
			d.log.Error("decision log: record does not decode; not uploaded", "err", err)
			continue
		}
		if err := d.plugin.Log(ctx, info); err != nil {
			d.log.Error("decision log: event refused by the plugin", "err", err)
		}
	}
}

// eventOf turns an audit record into the plugin's decision: its id,
// path, timestamp, input, trace ids and labels where OPA keeps them,
// the decision ({allow, reasons}) as the result, and the rest of the
// record under custom.
func eventOf(line []byte) (*opaserver.Info, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	str := func(k string) string {
		s, _ := m[k].(string)
		delete(m, k)
		return s
	}
	info := &opaserver.Info{DecisionID: str("decision_id"), Path: str("path"), TraceID: str("trace_id"), SpanID: str("span_id")}
	if ts, err := time.Parse(time.RFC3339Nano, str("timestamp")); err == nil {
		info.Timestamp = ts
	} else {
		info.Timestamp = time.Now().UTC()
	}
	if in, ok := m["input"]; ok {
		info.Input = &in
		delete(m, "input")
	}
	reasons := m["reasons"]
	if reasons == nil {
		reasons = []any{}
	}
	var result any = map[string]any{"allow": m["result"] == "allow", "reasons": reasons}
	info.Results = &result
	delete(m, "labels") // the manager's labels go with every event
	info.Custom = m
	return info, nil
}

// Dropped counts the events dropped: by the plugin when its buffer was
// full (the oldest batch goes), and before it when the queue was.
func (d *DecisionLogs) Dropped() int64 {
	n := d.queueDrops.Load()
	for _, name := range []string{"decision_logs_dropped_buffer_size_limit_bytes_exceeded", "decision_logs_dropped_buffer_size_limit_exceeded"} {
		v, _ := d.m.Counter(name).Value().(uint64)
		n += int64(v)
	}
	return n
}

// Uploaded counts the batches the service accepted.
func (d *DecisionLogs) Uploaded() int64 {
	v, _ := d.m.Counter("decision_logs_chunks_uploaded").Value().(uint64)
	return int64(v)
}

// Observe reports Dropped as the metric mcp_secure.decision_logs.dropped.
func (d *DecisionLogs) Observe(mp metric.MeterProvider) error {
	m := mp.Meter(ScopeName)
	c, err := m.Int64ObservableCounter("mcp_secure.decision_logs.dropped", metric.WithUnit("{event}"),
		metric.WithDescription("Decision events dropped before upload (the buffer was full)."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(c, d.Dropped())
		return nil
	}, c)
	return err
}

// Stop hands the queued records to the plugin and flushes what it holds
// to the service, within ctx's deadline (or 5 s).
func (d *DecisionLogs) Stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultShutdownTimeout)
		defer cancel()
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.queue)
	d.mu.Unlock()
	// The dropped counter stays observed: the exporters' last collection,
	// at their shutdown after this, reports the drops to the end.
	var err error
	select {
	case <-d.done:
	case <-ctx.Done():
		err = errors.New("decision logs: records still queued at the shutdown deadline")
	}
	d.mgr.Stop(ctx)
	return err
}

// opaLogger writes the plugin's log lines to the server's logger.
type opaLogger struct {
	log    *slog.Logger
	fields []any
	level  logging.Level
}

func (l *opaLogger) emit(lvl slog.Level, f string, a ...any) {
	l.log.Log(context.Background(), lvl, fmt.Sprintf(f, a...), l.fields...)
}

func (l *opaLogger) Debug(f string, a ...any) { l.emit(slog.LevelDebug, f, a...) }
func (l *opaLogger) Info(f string, a ...any)  { l.emit(slog.LevelDebug, f, a...) } // chatty: debug
func (l *opaLogger) Warn(f string, a ...any)  { l.emit(slog.LevelWarn, f, a...) }
func (l *opaLogger) Error(f string, a ...any) { l.emit(slog.LevelWarn, f, a...) }

func (l *opaLogger) WithFields(fields map[string]any) logging.Logger {
	n := &opaLogger{log: l.log, level: l.level, fields: append([]any(nil), l.fields...)}
	for k, v := range fields {
		n.fields = append(n.fields, k, v)
	}
	return n
}

func (l *opaLogger) GetLevel() logging.Level   { return l.level }
func (l *opaLogger) SetLevel(lv logging.Level) { l.level = lv }
