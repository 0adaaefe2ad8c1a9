package policy

import (
	"bytes"
	_ "embed"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcp-secure/mcp-secure/server/hostname"
)

// Policy is a loaded, validated policy file.
type Policy struct {
	Version    string     `yaml:"version"`
	Network    Network    `yaml:"network"`
	Filesystem Filesystem `yaml:"filesystem"`
	Commands   Commands   `yaml:"commands"`
	Tools      Tools      `yaml:"tools"`
	Audit      Audit      `yaml:"audit"`
	Rego       Rego       `yaml:"rego"`
	// Plugins holds plugin settings: plugins.<name>.<key>: value, with
	// ${VAR} expansion.
	Plugins map[string]map[string]string `yaml:"plugins" policy:"path"`
	// Telemetry configures OpenTelemetry export and decision-log upload.
	Telemetry Telemetry `yaml:"telemetry"`
	// DryRun is a policy decided next to this one, never enforced.
	DryRun DryRun `yaml:"dry_run"`
	// Servers are upstream MCP servers whose tools this server offers
	// (see servers.go).
	Servers map[string]Server `yaml:"servers"`
	// External are the external plugin directories (plugins.external) and
	// plugins.strict.
	External External `yaml:"-"`

	source string
	dir    string
	// stateDir holds what the server keeps of a bundle service's
	// bundles (see SetStateDir).
	stateDir string
	// revision is the revision of the bundle the policy came in, when
	// it came in one (revisionSet).
	revision    string
	revisionSet bool
	// lines maps a dotted key path to its line in the file.
	lines map[string]int
	// defaulted are the top-level sections the file leaves out.
	defaulted []string
	// envRefs are the variables the file's ${VAR} expansions named.
	envRefs []string
}

// Network is the network section.
type Network struct {
	AllowedRanges    []string   `yaml:"allowed_ranges"`
	AllowedEndpoints []Endpoint `yaml:"allowed_endpoints"`
	BlockedPorts     []int      `yaml:"blocked_ports"`
	AllowDNS         bool       `yaml:"allow_dns"`
	DNSAllowlist     []string   `yaml:"dns_allowlist"`
}

// Endpoint is a host that may be reached on the given ports.
type Endpoint struct {
	Host        string `yaml:"host"`
	Ports       []int  `yaml:"ports"`
	Description string `yaml:"description"`
}

// Filesystem is the filesystem section: path globs.
type Filesystem struct {
	AllowedPaths []string `yaml:"allowed_paths" policy:"glob"`
	DeniedPaths  []string `yaml:"denied_paths" policy:"glob"`
}

// Commands is the commands section.
type Commands struct {
	// Blocked are names (or paths, of which the name counts) that never
	// run, nor any file that is the same file as one of them.
	Blocked []string `yaml:"blocked"`
	// Allowed, when present, is the only executables that may run: a bare
	// name allows that name in the system directories, an absolute path
	// that file.
	Allowed *[]string `yaml:"allowed"`
	// Unconfined runs commands without Landlock (still with no_new_privs,
	// rlimits and the subreaper). Without it, where the kernel cannot
	// confine them, commands do not run.
	Unconfined bool `yaml:"unconfined"`
	// AllowUDP lets commands open UDP sockets and send datagrams to any
	// host and port (the sandbox cannot see where a datagram goes, so it
	// cannot hold UDP to, say, DNS). Without it, UDP sockets are refused.
	AllowUDP bool `yaml:"allow_udp"`
}

// Tools is the tools section.
type Tools struct {
	// RateLimits is requests per minute by tool name; "default" applies to
	// tools without their own entry.
	RateLimits map[string]int `yaml:"rate_limits"`
	// TimeoutSeconds bounds each tool call.
	TimeoutSeconds float64 `yaml:"timeout"`
	// Allowed are tool name globs; absent means every tool.
	Allowed *[]string `yaml:"allowed"`
	// Denied are tool name globs; a match denies whatever Allowed says.
	Denied []string `yaml:"denied"`
}

// Audit is the audit section.
type Audit struct {
	LogFile  string   `yaml:"log_file" policy:"path"`
	LogLevel string   `yaml:"log_level"`
	Include  []string `yaml:"include"`
	// MaxSize rotates the log before a record would take it past this
	// size: "10MB", "512KiB", "1048576" (K, KB and KiB all mean 1024).
	// Absent or "0": never rotate.
	MaxSize string `yaml:"max_size"`
	// Retention is how many rotated files are kept (audit.log.1 is the
	// newest); absent means DefaultAuditRetention, 0 keeps none.
	Retention *int `yaml:"retention"`
	// Durability is "fsync" (every record is synced to disk before the
	// call goes on) or "none" (the default: records are with the OS when
	// the write returns and survive a crash of the server, not of the
	// machine).
	Durability string `yaml:"durability"`

	// MaxSizeBytes is MaxSize in bytes, set by validation.
	MaxSizeBytes int64 `yaml:"-"`
}

// Audit rotation bounds.
const (
	DefaultAuditRetention = 5
	minAuditMaxSize       = 128 << 10 // two records at the record cap
	maxAuditRetention     = 1000
)

// parseSize reads "10MB", "512 KiB", "1048576"; units are powers of 1024.
func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 15 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	var shift uint
	switch strings.ToUpper(strings.TrimSpace(s[i:])) {
	case "", "B":
	case "K", "KB", "KIB":
		shift = 10
	case "M", "MB", "MIB":
		shift = 20
	case "G", "GB", "GIB":
		shift = 30
	default:
		return 0, false
	}
	return n << shift, true
}

// Rego names the user's Rego modules.
type Rego struct {
	Modules []string `yaml:"modules" policy:"path"`
}

// Defaults applied when a key is absent.
const (
	DefaultRate    = 60
	DefaultTimeout = 30 * time.Second
	maxTimeout     = time.Hour
)

// AuditFields are the names audit.include accepts.
var AuditFields = []string{"timestamp", "request_id", "tool_name", "arguments", "result_status", "execution_time", "security_events"}

// AuditRequired are the fields no include list may leave out: without
// them a record is no evidence of a decision. AuditOptional may be left
// out: tool arguments, JSON-RPC request ids and durations.
var (
	AuditRequired = []string{"timestamp", "tool_name", "result_status", "security_events"}
	AuditOptional = []string{"arguments", "request_id", "execution_time"}
)

//go:embed default.yaml
var defaultYAML []byte

// EmbeddedName is the Source of the embedded default policy.
const EmbeddedName = "<embedded default policy>"

// Load reads and validates the policy at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(path, filepath.Dir(abs), data, nil)
}

// Default returns the embedded default policy.
func Default() (*Policy, error) {
	wd, err := os.Getwd()
	if err != nil {
		wd = "/"
	}
	return Parse(EmbeddedName, wd, defaultYAML, nil)
}

// Parse validates data as a policy named name; relative paths in it
// resolve against dir. lookup reads environment variables (nil means the
// process environment).
func Parse(name, dir string, data []byte, lookup func(string) (string, bool)) (*Policy, error) {
	if lookup == nil {
		lookup = osLookup
	}
	lookup = xdgAbsolute(lookup)
	home := ""
	if h, ok := lookup("HOME"); ok {
		home = h
	} else if h, err := os.UserHomeDir(); err == nil {
		home = h
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "a policy file holds one YAML document"}
	}
	p := &Policy{source: name, dir: dir}
	d := &decoder{file: name, lines: map[string]int{}, lookup: lookup, home: home}
	if len(root.Content) > 0 {
		d.note(p.takeExternal(d, root.Content[0]))
		d.note(d.decode(root.Content[0], "", reflect.ValueOf(p).Elem(), literal))
	}
	p.lines = d.lines
	p.envRefs = slices.Sorted(maps.Keys(d.refs))
	decoded := len(d.errs)
	p.validate(d)
	if err := collect(d.errs, decoded, d.lines); err != nil {
		return nil, err
	}
	p.applyDefaults()
	return p, nil
}

// yamlError turns a YAML syntax error into an *Error with its line.
func yamlError(name string, err error) error {
	msg := err.Error()
	line := 0
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			fmt.Sscanf(n, "%d", &line)
			msg = strings.TrimSpace(after)
		}
	}
	return &Error{File: name, Line: line, Msg: "YAML syntax: " + msg}
}

// validate checks what decoding cannot, noting every problem in d: a file
// with several mistakes is reported whole.
func (p *Policy) validate(d *decoder) {
	bad := func(key, format string, args ...any) {
		d.note(&Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Version != "" && p.Version != "1.0" && p.Version != "1" {
		bad("version", "unsupported version %q (want \"1.0\")", p.Version)
	}
	n := &p.Network
	for i, r := range n.AllowedRanges {
		pr, err := netip.ParsePrefix(strings.TrimSpace(r))
		if err != nil {
			bad(fmt.Sprintf("network.allowed_ranges[%d]", i), "%s", cidrHint(r))
			continue
		}
		n.AllowedRanges[i] = pr.Masked().String()
	}
	for i, e := range n.AllowedEndpoints {
		key := fmt.Sprintf("network.allowed_endpoints[%d]", i)
		h := normalizeHost(e.Host)
		if !hostname.Valid(h) {
			bad(key+".host", "%q is not a host name", e.Host)
		}
		n.AllowedEndpoints[i].Host = h
		if len(e.Ports) == 0 {
			bad(key+".ports", "an endpoint needs at least one port")
		}
		for j, port := range e.Ports {
			if port < 1 || port > 65535 {
				bad(fmt.Sprintf("%s.ports[%d]", key, j), "port %d is outside 1-65535", port)
			}
		}
	}
	for i, port := range n.BlockedPorts {
		if port < 1 || port > 65535 {
			bad(fmt.Sprintf("network.blocked_ports[%d]", i), "port %d is outside 1-65535", port)
		}
	}
	for i, h := range n.DNSAllowlist {
		nh := normalizeHost(h)
		if !hostname.Valid(nh) {
			bad(fmt.Sprintf("network.dns_allowlist[%d]", i), "%q is not a host name", h)
			continue
		}
		n.DNSAllowlist[i] = nh
	}
	for _, sec := range []struct {
		key  string
		list []string
	}{{"filesystem.allowed_paths", p.Filesystem.AllowedPaths}, {"filesystem.denied_paths", p.Filesystem.DeniedPaths}} {
		for i, g := range sec.list {
			key := fmt.Sprintf("%s[%d]", sec.key, i)
			if strings.TrimSpace(g) == "" || strings.ContainsRune(g, 0) {
				bad(key, "empty or invalid path pattern")
				continue
			}
			if g := strings.TrimSpace(g); !strings.HasPrefix(g, "/") && g != "**" && !strings.HasPrefix(g, "**/") {
				bad(key, "%q is relative: write an absolute path (${HOME}/..., ~/...) or **/%s to match it in any directory", g, strings.TrimPrefix(g, "./"))
			}
		}
	}
	check := func(key string, list []string) {
		for i, c := range list {
			if strings.TrimSpace(c) == "" {
				bad(fmt.Sprintf("%s[%d]", key, i), "empty name")
			}
		}
	}
	check("commands.blocked", p.Commands.Blocked)
	if p.Commands.Allowed != nil {
		check("commands.allowed", *p.Commands.Allowed)
		for i, c := range *p.Commands.Allowed {
			if c = strings.TrimSpace(c); strings.ContainsRune(c, '/') && !filepath.IsAbs(c) {
				bad(fmt.Sprintf("commands.allowed[%d]", i), "%q: give a bare name (found in the system directories) or an absolute path", c)
			}
		}
	}
	t := &p.Tools
	for name, r := range t.RateLimits {
		if r < 0 {
			bad("tools.rate_limits."+name, "rate %d is negative (0 blocks the tool)", r)
		}
	}
	if t.TimeoutSeconds < 0 || time.Duration(t.TimeoutSeconds*float64(time.Second)) > maxTimeout {
		bad("tools.timeout", "timeout %v s is outside 0-%v s", t.TimeoutSeconds, maxTimeout.Seconds())
	}
	if t.Allowed != nil {
		check("tools.allowed", *t.Allowed)
	}
	check("tools.denied", t.Denied)
	a := &p.Audit
	// The audit log records every decision: a level that would drop the
	// records of allowed calls is refused rather than ignored.
	switch strings.ToUpper(a.LogLevel) {
	case "", "DEBUG", "INFO":
	case "WARN", "WARNING", "ERROR":
		bad("audit.log_level", "%q would leave allowed calls unrecorded; the audit log records every decision (use INFO, or DEBUG for debug lines on stderr too)", a.LogLevel)
	default:
		bad("audit.log_level", "unknown level %q (INFO or DEBUG)", a.LogLevel)
	}
	for i, f := range a.Include {
		if !slices.Contains(AuditFields, f) {
			bad(fmt.Sprintf("audit.include[%d]", i), "unknown field %q (known: %s)", f, strings.Join(AuditFields, ", "))
		}
	}
	if len(a.Include) > 0 {
		for _, f := range AuditRequired {
			if !slices.Contains(a.Include, f) {
				bad("audit.include", "%s is always recorded (the audit log is evidence of every decision): list it, or leave include out; only %s may be left out", f, strings.Join(AuditOptional, ", "))
			}
		}
	}
	if a.MaxSize != "" {
		n, ok := parseSize(a.MaxSize)
		switch {
		case !ok:
			bad("audit.max_size", "%q is not a size (write \"10MB\", \"512KiB\" or a byte count)", a.MaxSize)
		case n != 0 && n < minAuditMaxSize:
			bad("audit.max_size", "%q is below the minimum of 128KiB (one record can be 64KiB)", a.MaxSize)
		default:
			a.MaxSizeBytes = n
		}
	}
	if a.Retention == nil {
		r := DefaultAuditRetention
		a.Retention = &r
	} else if *a.Retention < 0 || *a.Retention > maxAuditRetention {
		bad("audit.retention", "retention %d is outside 0-%d", *a.Retention, maxAuditRetention)
	}
	switch a.Durability {
	case "", "none", "fsync":
	default:
		bad("audit.durability", "unknown durability %q (none or fsync)", a.Durability)
	}
	if a.LogFile == "" {
		f, err := d.expand("${XDG_STATE_HOME:-~/.local/state}/mcp-secure/audit.log")
		if err != nil {
			bad("audit.log_file", "no log file given and no default: %v", err)
		}
		a.LogFile = f
	}
	a.LogFile = p.abs(a.LogFile)
	// The telemetry section reports its first problem.
	if err := p.validateTelemetry(func(key, format string, args ...any) error {
		return &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)}
	}); err != nil {
		d.note(err)
	}
	d.note(p.validateExternal(d))
	for i, m := range p.Rego.Modules {
		key := fmt.Sprintf("rego.modules[%d]", i)
		m = p.abs(m)
		st, err := os.Stat(m)
		if err != nil {
			bad(key, "%v", err)
		} else if st.IsDir() {
			bad(key, "%s is a directory; name each .rego file", m)
		}
		p.Rego.Modules[i] = m
	}
	if err := p.validateDryRun(d); err != nil {
		d.note(err)
	}
	// The servers section reports its first problem.
	if err := p.validateServers(func(key, format string, args ...any) error {
		return &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)}
	}); err != nil {
		d.note(err)
	}
}

func (p *Policy) abs(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.dir, path)
}

// Source names where the policy came from: its file, or EmbeddedName.
func (p *Policy) Source() string { return p.source }

// SetStateDir records the directory where the server keeps what it
// needs of a bundle service's bundles (the last good bundle, its ETag,
// the rollback floor): one of the server's own directories.
func (p *Policy) SetStateDir(dir string) { p.stateDir = dir }

// StateDir is the directory SetStateDir recorded, or "".
func (p *Policy) StateDir() string { return p.stateDir }

// SetRevision records the revision of the bundle the policy came in
// ("" for a bundle that has none).
func (p *Policy) SetRevision(rev string) { p.revision, p.revisionSet = rev, true }

// Revision is the revision SetRevision recorded; ok is false for a
// policy that did not come in a bundle.
func (p *Policy) Revision() (rev string, ok bool) { return p.revision, p.revisionSet }

// Timeout is the deadline of one tool call.
func (p *Policy) Timeout() time.Duration {
	if p.Tools.TimeoutSeconds == 0 {
		return DefaultTimeout
	}
	return time.Duration(p.Tools.TimeoutSeconds * float64(time.Second))
}

// RateLimit is tool's rate in requests per minute; "" or an unlisted tool
// gets the default.
func (p *Policy) RateLimit(tool string) int {
	if r, ok := p.Tools.RateLimits[tool]; ok && tool != "" {
		return r
	}
	if r, ok := p.Tools.RateLimits["default"]; ok {
		return r
	}
	return DefaultRate
}

// Audits reports whether audit.include names field; an absent include
// list means every field.
func (p *Policy) Audits(field string) bool {
	return len(p.Audit.Include) == 0 || slices.Contains(p.Audit.Include, field)
}

func normalizeHost(h string) string {
	return hostname.Normalize(strings.TrimSpace(h))
}

// xdgAbsolute is lookup with a relative XDG_* variable unset, as the XDG
// base directory specification has it: a relative value would make the
// files it names depend on the directory the server runs in.
func xdgAbsolute(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := lookup(name)
		if ok && strings.HasPrefix(name, "XDG_") && !filepath.IsAbs(v) {
			return "", false
		}
		return v, ok
	}
}
