package external

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// ManifestName is the file a plugin directory holds.
const ManifestName = "manifest.yaml"

// The manifest types. This package serves TypeExternal; another plugin
// may serve other types from the same plugin directories (see ClaimType).
const (
	TypeExternal = "external"
	TypeMCP      = "mcp"
)

// The modes of an external plugin.
const (
	ModePerCall    = "per-call"
	ModePersistent = "persistent"
)

// maxManifest bounds a manifest file.
const maxManifest = 1 << 20

// Manifest is a plugin directory's manifest.yaml, validated, with its
// executable found.
type Manifest struct {
	Name        string     `yaml:"name"`
	Version     string     `yaml:"version"`
	Type        string     `yaml:"type"`
	Description string     `yaml:"description"`
	Executable  string     `yaml:"executable"`
	Interpreter string     `yaml:"interpreter"`
	Args        []string   `yaml:"args"`
	SHA256      string     `yaml:"sha256"`
	Mode        string     `yaml:"mode"`
	Env         []string   `yaml:"env"`
	Sandbox     *Sandbox   `yaml:"sandbox"`
	Tools       []ToolSpec `yaml:"tools"`
	// ToolPrefix (type mcp) is put before the names of the server's
	// tools; absent means "<name>__".
	ToolPrefix *string `yaml:"tool_prefix"`

	// File is the manifest's absolute path; Dir its directory with
	// symlinks resolved; ExecutablePath the executable's real path
	// (inside Dir).
	File           string `yaml:"-"`
	Dir            string `yaml:"-"`
	ExecutablePath string `yaml:"-"`
}

// Sandbox narrows what the policy lets the plugin's processes reach.
type Sandbox struct {
	// Paths, when present, keeps only the policy's allowed directories
	// below (or above) one of these; relative paths resolve against the
	// plugin directory. An empty list leaves none.
	Paths *[]string `yaml:"paths"`
	// Ports, when present, keeps only these of the policy's TCP ports.
	Ports *[]int `yaml:"ports"`
}

// ToolSpec is one tool of the manifest.
type ToolSpec struct {
	Name        string       `yaml:"name"`
	Title       string       `yaml:"title"`
	Description string       `yaml:"description"`
	InputSchema any          `yaml:"input_schema"`
	Annotations *Annotations `yaml:"annotations"`

	// Schema is InputSchema as JSON.
	Schema json.RawMessage `yaml:"-"`
}

// Annotations are the MCP tool annotations, spelled as in MCP.
type Annotations struct {
	Title           string `yaml:"title"`
	ReadOnlyHint    bool   `yaml:"readOnlyHint"`
	DestructiveHint *bool  `yaml:"destructiveHint"`
	IdempotentHint  bool   `yaml:"idempotentHint"`
	OpenWorldHint   *bool  `yaml:"openWorldHint"`
}

// ManifestError is a bad manifest: it names the file (and the line, when
// one is to blame).
type ManifestError struct {
	File string
	Line int
	Msg  string
}

func (e *ManifestError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Compiled on first use, not in the package's init, which runs at every
// start of the server.
var (
	pluginName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`) })
	toolName   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`) })
	envVarName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`) })
	hexSHA256  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })
	bareName   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`) })
	toolPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{0,64}$`) })
)

// Load reads dir/manifest.yaml, validates it and finds its executable,
// checking its sha256 when the manifest pins one. Every error is a
// *ManifestError naming the file. It is meant for any plugin that reads
// plugin directories (type external or mcp); type-specific rules (tools
// are required for type external) are checked here too. When the
// manifest parses but its executable does not pass (missing, outside the
// directory, a sha256 mismatch), the manifest comes back with the error,
// for messages and records only: it is not to be run.
func Load(dir string) (*Manifest, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, &ManifestError{File: dir, Msg: err.Error()}
	}
	file := filepath.Join(abs, ManifestName)
	f, err := os.Open(file)
	if err != nil {
		return nil, &ManifestError{File: file, Msg: "cannot read the manifest: " + unwrapPath(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, &ManifestError{File: file, Msg: err.Error()}
	}
	if len(data) > maxManifest {
		return nil, &ManifestError{File: file, Msg: "manifest is larger than 1 MiB"}
	}
	m, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	if err := m.resolve(); err != nil {
		return m, err
	}
	return m, nil
}

// Parse decodes and validates a manifest named file (its directory is the
// plugin directory) without touching the filesystem.
func Parse(file string, data []byte) (*Manifest, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	m := &Manifest{File: file, Dir: filepath.Dir(file)}
	if err := dec.Decode(m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ManifestError{File: file, Msg: "empty manifest"}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ManifestError{File: file, Line: extra.Line, Msg: "a manifest holds one YAML document"}
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manifest) errf(format string, args ...any) error {
	return &ManifestError{File: m.File, Msg: fmt.Sprintf(format, args...)}
}

func (m *Manifest) validate() error {
	if !pluginName().MatchString(m.Name) {
		return m.errf("name %q: want letters, digits, _ . - (at most 64)", m.Name)
	}
	if strings.TrimSpace(m.Version) == "" {
		return m.errf("version is missing")
	}
	switch m.Type {
	case TypeExternal, TypeMCP:
	case "":
		return m.errf("type is missing (external or mcp)")
	default:
		return m.errf("unknown type %q (external or mcp)", m.Type)
	}
	if m.Executable == "" {
		return m.errf("executable is missing")
	}
	if filepath.IsAbs(m.Executable) || strings.IndexByte(m.Executable, 0) >= 0 {
		return m.errf("executable %q: give a path relative to the manifest", m.Executable)
	}
	if m.Interpreter != "" && !filepath.IsAbs(m.Interpreter) && !bareName().MatchString(m.Interpreter) {
		return m.errf("interpreter %q: give an absolute path or a bare name (found in the system directories)", m.Interpreter)
	}
	for i, a := range m.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return m.errf("args[%d] contains a NUL byte", i)
		}
	}
	if m.SHA256 != "" {
		m.SHA256 = strings.ToLower(strings.TrimSpace(m.SHA256))
		if !hexSHA256().MatchString(m.SHA256) {
			return m.errf("sha256 %q: want 64 hex digits", m.SHA256)
		}
	}
	switch m.Mode {
	case "":
		m.Mode = ModePerCall
	case ModePerCall, ModePersistent:
		if m.Type != TypeExternal {
			return m.errf("mode applies to type external only")
		}
	default:
		return m.errf("mode %q: want per-call or persistent", m.Mode)
	}
	for i, e := range m.Env {
		if !envVarName().MatchString(e) {
			return m.errf("env[%d] %q is not a variable name", i, e)
		}
		if why := plugin.EnvRefusal(e, nil); why != "" {
			return m.errf("env[%d] %s is refused: %s", i, e, why)
		}
	}
	if s := m.Sandbox; s != nil {
		if s.Paths != nil {
			for i, p := range *s.Paths {
				if p == "" || strings.IndexByte(p, 0) >= 0 {
					return m.errf("sandbox.paths[%d] is empty or invalid", i)
				}
				if !filepath.IsAbs(p) {
					(*s.Paths)[i] = filepath.Join(m.Dir, p)
				}
				(*s.Paths)[i] = filepath.Clean((*s.Paths)[i])
			}
		}
		if s.Ports != nil {
			for i, p := range *s.Ports {
				if p < 1 || p > 65535 {
					return m.errf("sandbox.ports[%d]: port %d is outside 1-65535", i, p)
				}
			}
		}
	}
	if m.Type == TypeExternal && len(m.Tools) == 0 {
		return m.errf("a plugin of type external needs at least one tool")
	}
	if m.Type == TypeMCP && len(m.Tools) > 0 {
		return m.errf("a plugin of type mcp lists no tools: they come from its server (tools/list)")
	}
	if m.ToolPrefix != nil {
		if m.Type != TypeMCP {
			return m.errf("tool_prefix applies to type mcp only")
		}
		if !toolPrefix().MatchString(*m.ToolPrefix) {
			return m.errf("tool_prefix %q: want letters, digits, _ . - (at most 64)", *m.ToolPrefix)
		}
	}
	seen := map[string]bool{}
	for i := range m.Tools {
		t := &m.Tools[i]
		if !toolName().MatchString(t.Name) {
			return m.errf("tools[%d].name %q: want letters, digits, _ . - (at most 128)", i, t.Name)
		}
		if seen[t.Name] {
			return m.errf("tool %q is declared twice", t.Name)
		}
		seen[t.Name] = true
		if strings.TrimSpace(t.Description) == "" {
			return m.errf("tool %q: description is missing", t.Name)
		}
		if t.InputSchema == nil {
			t.InputSchema = map[string]any{"type": "object"}
		}
		raw, err := json.Marshal(t.InputSchema)
		if err != nil {
			return m.errf("tool %q: input_schema: %v", t.Name, err)
		}
		if _, err := plugin.CompileSchema(t.Name, raw); err != nil {
			return m.errf("%v", err)
		}
		t.Schema = raw
	}
	return nil
}

// resolve finds the executable inside the plugin directory and checks its
// sha256.
func (m *Manifest) resolve() error {
	dir, err := filepath.EvalSymlinks(m.Dir)
	if err != nil {
		return m.errf("plugin directory: %s", unwrapPath(err))
	}
	m.Dir = dir
	path := filepath.Join(dir, m.Executable)
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return m.errf("executable %s: %s", path, unwrapPath(err))
	}
	if !strings.HasPrefix(real, dir+"/") {
		return m.errf("executable %s resolves to %s, outside the plugin directory", path, real)
	}
	st, err := os.Stat(real)
	if err != nil {
		return m.errf("executable %s: %s", path, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return m.errf("executable %s is not a regular file", path)
	}
	if m.Interpreter == "" && st.Mode().Perm()&0o111 == 0 {
		return m.errf("executable %s is not executable (chmod +x it, or name an interpreter)", path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return m.errf("executable %s is writable by group or others", path)
	}
	m.ExecutablePath = real
	if m.SHA256 != "" {
		sum, err := fileSHA256(real)
		if err != nil {
			return m.errf("executable %s: %v", path, err)
		}
		if sum != m.SHA256 {
			return m.errf("sha256 mismatch: executable %s has sha256 %s, the manifest pins %s", path, sum, m.SHA256)
		}
	}
	return nil
}

// Prefix is what the names of a type mcp plugin's tools start with.
func (m *Manifest) Prefix() string {
	if m.ToolPrefix != nil {
		return *m.ToolPrefix
	}
	return m.Name + "__"
}

// CheckSHA256 checks the executable against the manifest's sha256 again
// (a long-lived server is started again after a crash); nil when the
// manifest pins none.
func (m *Manifest) CheckSHA256() error {
	if m.SHA256 == "" {
		return nil
	}
	sum, err := fileSHA256(m.ExecutablePath)
	if err != nil {
		return m.errf("executable %s: %v", m.ExecutablePath, err)
	}
	if sum != m.SHA256 {
		return m.errf("sha256 mismatch: executable %s has sha256 %s, the manifest pins %s", m.ExecutablePath, sum, m.SHA256)
	}
	return nil
}

// Program is the argv the manifest runs and the program to start: the
// executable, or the interpreter with the executable as its first
// argument.
func (m *Manifest) Program() (path string, argv []string) {
	if m.Interpreter != "" {
		return m.Interpreter, append([]string{m.Interpreter, m.ExecutablePath}, m.Args...)
	}
	return m.ExecutablePath, append([]string{m.ExecutablePath}, m.Args...)
}

// LaunchSpec is how the plugin's processes are started; env holds the
// values of the variables the manifest names (unset ones are left out).
func (m *Manifest) LaunchSpec(lookup func(string) (string, bool)) *plugin.LaunchSpec {
	path, argv := m.Program()
	env := map[string]string{}
	for _, name := range m.Env {
		if v, ok := lookup(name); ok {
			env[name] = v
		}
	}
	spec := &plugin.LaunchSpec{Plugin: m.Name, Dir: m.Dir, Path: path, Args: argv, Env: env,
		LongLived: m.Mode == ModePersistent || m.Type == TypeMCP}
	if m.Sandbox != nil {
		spec.Paths, spec.Ports = m.Sandbox.Paths, m.Sandbox.Ports
	}
	if m.SHA256 != "" {
		spec.SHA256, spec.SHA256Path = m.SHA256, m.ExecutablePath
	}
	return spec
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// yamlFieldError is how the YAML decoder words an unknown key.
var yamlFieldError = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`field (\S+) not found in type \S+`) })

// yamlLine finds the line a YAML error names.
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): `) })

// yamlError turns a decoding error into a ManifestError with the line of
// the first problem and the words a manifest author knows.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	line := 0
	if m := yamlLine().FindStringSubmatch(msg); m != nil {
		fmt.Sscanf(m[1], "%d", &line)
		msg = msg[len(m[0]):]
	}
	msg = yamlFieldError().ReplaceAllString(msg, "unknown key $1")
	return &ManifestError{File: file, Line: line, Msg: msg}
}

// unwrapPath drops the path a *PathError repeats.
func unwrapPath(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
