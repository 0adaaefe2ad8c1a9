package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

func serve(ctx context.Context, p serveParams, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	chk, err := checkPolicy(ctx, p.policyFile)
	if err != nil {
		return err
	}
	pol, eng := chk.pol, chk.eng
	for _, d := range pol.Defaulted() {
		log.Info("policy section left out; using its default", "policy", pol.Source(), "section", d)
	}
	for _, w := range chk.warnings {
		log.Warn("policy: " + w)
	}
	eng.Warm(ctx)

	sink, err := audit.Open(pol.Audit.LogFile, &audit.FileOptions{
		Sync:      pol.Audit.Durability == "fsync",
		MaxSize:   pol.Audit.MaxSizeBytes,
		Retention: *pol.Audit.Retention,
	})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	key, err := audit.LoadKey(audit.KeyPath(pol.Audit.LogFile))
	if err != nil {
		sink.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	if h, ok := log.Handler().(*audit.RedactingHandler); ok {
		h.UseRedactor(audit.NewRedactor(key))
	}
	obs, err := startTelemetry(ctx, pol, log)
	if err != nil {
		sink.Close()
		return err
	}
	defer obs.shutdown(ctx) // after the audit log is closed: every record is in
	alog := audit.New(sink, &audit.Options{
		Labels:        map[string]string{"service": "mcp-secure", "version": version},
		Log:           log,
		Key:           key,
		Masker:        eng,
		OmitRequestID: !pol.Audits("request_id"),
		OmitDuration:  !pol.Audits("execution_time"),
		Tee:           obs.tee(),
	})
	if strings.EqualFold(pol.Audit.LogLevel, "DEBUG") {
		stderrLevel.Set(slog.LevelDebug)
	}
	defer func() {
		if err := alog.Close(); err != nil {
			log.Error("closing audit log", "err", err)
		}
	}()

	auditor := obs.auditor(alog, key)
	network := guard.NewNetwork(eng, auditor, &guard.NetworkOptions{Logger: log, Generation: eng.Generation})
	files := guard.NewFiles(eng, auditor, &guard.FilesOptions{Roots: pol.Roots(), Logger: log})
	commands := guard.NewCommands(eng, auditor, files, &guard.CommandsOptions{
		Logger:     log,
		Allowed:    pol.Commands.Allowed,
		Blocked:    pol.Commands.Blocked,
		Unconfined: pol.Commands.Unconfined,
		ConnectTCP: pol.ChildPorts(),
		Limits:     sandbox.Limits{CPU: pol.Timeout()},
		Protected:  protectedPaths(pol),
	})
	if desc, ok := commands.Confinement(); ok {
		log.Info("command confinement", "sandbox", desc, "tcp_ports", pol.ChildPorts())
	} else {
		log.Warn("command confinement", "sandbox", desc)
	}
	if guard.FilesAvailable {
		log.Info("filesystem door", "resolution", guard.PathResolution)
	} else {
		log.Warn("filesystem door", "resolution", guard.PathResolution)
	}
	srv, err := server.New(server.Options{
		Version:  version,
		Logger:   log,
		Engine:   eng,
		Limiter:  ratelimit.New(rateConfig(pol), time.Now),
		Audit:    auditor,
		Network:  network,
		Files:    files,
		Commands: commands,

		Settings: pluginSettings(pol),
		Plugins:  pluginOrder(),
		Timeout:  pol.Timeout(),

		OmitArguments: !pol.Audits("arguments"),
		ShutdownGrace: p.shutdownGrace,
		MaxInFlight:   p.maxInFlight,

		TracerProvider: obs.tel.TracerProvider(),
		MeterProvider:  obs.tel.MeterProvider(),
		Redactor:       audit.NewRedactor(key),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Error("closing plugins", "err", err)
		}
	}()
	log.Info("serving on stdio", "policy", pol.Source(), "audit", pol.Audit.LogFile, "version", version)
	return srv.Run(ctx, stdin, stdout)
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
	if dir == "" {
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
	user := map[string]string{}
	for _, f := range pol.Rego.Modules {
		src, err := os.ReadFile(f)
		if err != nil {
			return engine.Config{}, fmt.Errorf("rego.modules: %w", err)
		}
		user[f] = string(src)
	}
	data := pol.Data()
	data["server_files"], _ = serverFiles(pol)
	return engine.Builtin(data, user)
}

func rateConfig(pol *policy.Policy) ratelimit.Config {
	return ratelimit.Config{PerMinute: pol.Tools.RateLimits, Default: pol.RateLimit("")}
}

func policyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("policy: want check or compile")
	}
	sub, args := args[0], args[1:]
	var p serveParams
	var out string
	fs := newFlagSet("policy "+sub, stderr)
	fs.StringVar(&p.policyFile, "policy", "", "policy `file` (YAML)")
	if sub == "compile" {
		fs.StringVar(&out, "out", "", "write the data document to `file` instead of stdout")
	}
	if err := fs.Parse(args); err != nil {
		return &exitErr{code: exitUsage, err: err}
	}
	if fs.NArg() > 0 && p.policyFile == "" {
		p.policyFile = fs.Arg(0)
	}
	switch sub {
	case "check":
		// The checks serve runs before it starts, nothing less.
		chk, err := checkPolicy(ctx, p.policyFile)
		if err != nil {
			return err
		}
		return report(stdout, chk)
	case "compile":
		pol, err := loadPolicy(p.policyFile)
		if err != nil {
			return &exitErr{code: exitUsage, err: err}
		}
		cfg, err := engineConfig(pol)
		if err != nil {
			return &exitErr{code: exitUsage, err: err}
		}
		doc := map[string]any{"mcp": map[string]any{"policy": cfg.Data}}
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if out == "" {
			_, err = stdout.Write(data)
			return err
		}
		return os.WriteFile(out, data, 0o644)
	default:
		return usageErr("policy: unknown subcommand %q", sub)
	}
}

// report writes what `policy check` found: ok, the sections the policy
// leaves to their defaults, and warnings.
func report(w io.Writer, chk *checked) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok (%d built-in modules, %d user modules, %d tools)\n",
		chk.pol.Source(), len(chk.cfg.Modules), len(chk.cfg.UserModules), len(chk.tools))
	for _, d := range chk.pol.Defaulted() {
		fmt.Fprintf(&b, "default: %s\n", d)
	}
	for _, warn := range chk.warnings {
		fmt.Fprintf(&b, "warning: %s\n", warn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
