package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mcp-secure/mcp-secure/cmd/mcp-secure/internal/early"
	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/bundle"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

func serve(ctx context.Context, p serveParams, stdin io.Reader, stdout io.Writer, log *slog.Logger) (err error) {
	// A client that closes its end of stdout (or stderr) must not kill the
	// server: with SIGPIPE heard, a write there fails with EPIPE instead,
	// and the transport finishes the calls in flight, their records
	// written, as at the end of input. (Heard, not ignored: an ignored
	// signal would stay ignored in the children the server starts.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	p.bundleChanged = make(chan struct{}, 1)
	p.bundleRefused = make(chan bundle.Refusal, bundleRefusals)
	chk, src, err := servePolicy(ctx, p, log)
	if err != nil {
		return err
	}
	if src != nil {
		defer src.Stop(context.Background())
	}
	// The engine may still be building (startPolicy): the rest of the
	// start and the handshake go on meanwhile, and every decision waits
	// for it. If its build fails, that is the error serve returns, as if
	// the build had come first.
	defer func() {
		if err != nil {
			if werr := chk.wait(context.WithoutCancel(ctx)); werr != nil {
				err = werr
			}
		}
	}()
	pol, eng := chk.pol, chk.eng
	loadKey := startKey(pol)
	for _, d := range pol.Defaulted() {
		log.Info("policy section left out; using its default", "policy", pol.Source(), "section", d)
	}
	for _, w := range chk.warnings {
		log.Warn("policy: " + w)
	}
	// Filling the evaluator's caches overlaps the rest of the start and
	// the handshake; a request that comes first is decided all the same.
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		eng.Warm(ctx)
	}()
	// The collector's start-up target (see early.EndStartGC) stays until the engine is
	// warm and the server has started.
	defer early.EndStartGC()
	rl, err := newReloader(chk, p.policyFile, log)
	if err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	rl.interval = p.reloadEvery

	obs, err := startTelemetry(ctx, pol, log)
	if err != nil {
		return err
	}
	defer obs.shutdown(ctx) // after the audit log is closed: every record is in
	labels := map[string]string{"service": "mcp-secure", "version": version}
	if src != nil {
		labels[audit.LabelBundleRevision] = chk.revision()
	}
	alog, key, err := openAuditLogKey(pol, eng, audit.Options{Labels: labels, Log: log, Tee: obs.tee()}, loadKey)
	if err != nil {
		return err
	}
	if h, ok := log.Handler().(*audit.RedactingHandler); ok {
		h.UseRedactor(audit.NewRedactor(key))
	}
	if strings.EqualFold(pol.Audit.LogLevel, "DEBUG") {
		stderrLevel.Set(slog.LevelDebug)
	}
	defer func() {
		if err := alog.Close(); err != nil {
			log.Error("closing audit log", "err", err)
		}
	}()
	auditor := obs.auditor(alog, key)
	// Every decision also joins its session's history (input.session).
	recorded := server.NewHistory(auditor, nil)
	own := ownEnv(p.bundle, chk)
	// A dry-run policy decides next to every guard too, for the record.
	network := guard.NewNetwork(eng, recorded, &guard.NetworkOptions{Logger: log, Generation: func() uint64 { return eng.StableGeneration(engine.Network) }, DryRun: rl.dry})
	files := guard.NewFiles(eng, recorded, &guard.FilesOptions{Roots: pol.Roots(), Logger: log, DryRun: rl.dry})
	commands := guard.NewCommands(eng, recorded, files, &guard.CommandsOptions{
		DryRun:     rl.dry,
		Logger:     log,
		Allowed:    pol.Commands.Allowed,
		Blocked:    pol.Commands.Blocked,
		Unconfined: pol.Commands.Unconfined,
		AllowUDP:   pol.Commands.AllowUDP,
		ConnectTCP: pol.ChildPorts(),
		Limits:     sandbox.Limits{CPU: pol.Timeout()},
		Protected:  protectedPaths(pol),
		OwnEnv:     own,
	})
	// What a launcher killed by its own target leaves comes to the server,
	// which kills it.
	if err := sandbox.BecomeSubreaper(); err != nil {
		log.Warn("the server cannot be the subreaper of its children: what a launcher killed by its target leaves runs on", "err", err)
	}
	if desc, ok := commands.Confinement(); ok {
		log.Info("command confinement", "sandbox", desc, "tcp_ports", pol.ChildPorts())
	} else {
		log.Warn("command confinement", "sandbox", desc)
	}
	// Finding the launcher runs it once (a probe): off the start's path,
	// once the policy is compiled and warm. The first command waits for it.
	go func() {
		<-warmed
		log.Info("sandbox launcher", "launcher", sandbox.LauncherDesc())
	}()
	if guard.FilesAvailable {
		log.Info("filesystem door", "resolution", guard.PathResolution)
	} else {
		log.Warn("filesystem door", "resolution", guard.PathResolution)
	}
	limiter := ratelimit.New(rateConfig(pol), time.Now)
	upstreams := startUpstreams(ctx, pol, commands, own, alog, log)
	mcps, err := startMCPPlugins(ctx, pol, commands, alog, log)
	if err != nil {
		closeAll(upstreams, log)
		return err
	}
	upstreams = append(upstreams, mcps...)
	srv, err := server.New(server.Options{
		Version:  version,
		Logger:   log,
		Engine:   eng,
		Limiter:  limiter,
		Audit:    recorded,
		DryRun:   rl.dry,
		Network:  network,
		Files:    files,
		Commands: commands,

		Settings: pluginSettings(pol),
		Plugins:  pluginOrder(),
		Timeout:  pol.Timeout(),
		Extra:    upstreams,

		OmitArguments: !pol.Audits("arguments"),
		ShutdownGrace: p.shutdownGrace,
		MaxInFlight:   p.maxInFlight,

		TracerProvider: obs.tel.TracerProvider(),
		MeterProvider:  obs.tel.MeterProvider(),
		Redactor:       audit.NewRedactor(key),
	})
	if err != nil {
		closeAll(upstreams, log)
		return err
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Error("closing plugins", "err", err)
		}
	}()
	rl.audit, rl.limiter, rl.srv, rl.own = alog, limiter, srv, commands
	if src != nil {
		// The server is set up with the bundle: it is in force (kept
		// for a restart, the rollback floor), before any reload.
		activate(src, chk, log)
		defer reloadBundles(ctx, p, src, rl, alog)()
	}
	defer rl.run(ctx)()
	log.Info("serving on stdio", "policy", pol.Source(), "audit", pol.Audit.LogFile, "version", version)
	go func() {
		<-warmed
		early.EndStartGC()
	}()
	return runWhenBuilt(ctx, chk, func(ctx context.Context) error { return srv.Run(ctx, stdin, stdout) })
}

// runWhenBuilt runs the server while chk's engine may still be building:
// if the build fails, the server is stopped (what it was asked to decide
// meanwhile was denied), and however the server ended, the build's error
// is returned, as when the build came first.
func runWhenBuilt(ctx context.Context, chk *checked, run func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		if err := chk.wait(ctx); err != nil {
			cancel(err)
		}
	}()
	err := run(ctx)
	if werr := chk.wait(context.WithoutCancel(ctx)); werr != nil {
		return werr
	}
	return err
}

// ownEnv are the variables the server reads for its credentials besides
// OTEL_* and MCP_SECURE_*: the bundle token variable and every ${VAR}
// the policy itself and its dry-run policy take (a decision-log token, a
// plugin's key). No child is given one, by name or through an upstream's
// ${VAR}.
func ownEnv(b bundleParams, chk *checked) []string {
	return append(b.ownEnv(), chk.envRefs()...)
}

// loadPolicy reads file, else the user's policy in the config directory,
// else the embedded default.
func loadPolicy(file string) (*policy.Policy, error) {
	if file != "" {
		return policy.Load(file)
	}
	if path := userPolicyPath(); path != "" {
		if _, err := os.Stat(path); err == nil {
			return policy.Load(path)
		}
	}
	return policy.Default()
}

func userPolicyPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) { // relative or empty counts as unset
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "mcp-secure", "policy.yaml")
}

// engineConfig gathers the built-in modules, the policy's own modules and
// the compiled data document.
func engineConfig(pol *policy.Policy) (engine.Config, error) {
	user, err := readModules(pol)
	if err != nil {
		return engine.Config{}, err
	}
	return engineConfigFor(pol, user)
}

// readModules reads the policy's rego.modules by file name.
func readModules(pol *policy.Policy) (map[string]string, error) {
	user := map[string]string{}
	for _, f := range pol.Rego.Modules {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("rego.modules: %w", err)
		}
		user[f] = string(src)
	}
	return user, nil
}

// engineConfigFor is engineConfig with the user modules already read.
func engineConfigFor(pol *policy.Policy, user map[string]string) (engine.Config, error) {
	data := pol.Data()
	data["server_files"], _ = serverFiles(pol)
	cfg, err := engine.Builtin(data, user)
	// Each decision names the bundle revision that decided it.
	if rev, ok := pol.Revision(); ok {
		cfg.Revision = &rev
	}
	return cfg, err
}

func rateConfig(pol *policy.Policy) ratelimit.Config {
	return ratelimit.Config{PerMinute: pol.Tools.RateLimits, Default: pol.RateLimit("")}
}
