package plugin

import (
	"context"
	"errors"
	"io"
)

// Launcher starts the processes of external plugins and of upstream MCP
// servers. Unlike [Commands], it does not ask commands.allowed: the
// operator trusted the program by listing its plugin directory in the
// policy (plugins.external) or the server in its servers section. The
// process still runs in the sandbox, with the plugin directory readable
// and executable, the policy's filesystem and TCP allowances narrowed by
// the manifest or the server's sandbox section, and no environment
// beyond what they name. The server's [Commands] door implements it; a
// plugin finds it with a type assertion on [Host.Commands].
type Launcher interface {
	// LaunchConfinement checks spec without starting anything (the program and
	// its #! interpreters are found) and says in one line how its
	// processes will be confined. An error means they cannot run: the
	// program is missing, or the kernel cannot confine them and the policy
	// does not allow unconfined children.
	LaunchConfinement(spec *LaunchSpec) (string, error)
	// Launch starts spec. The process and everything it starts are killed
	// when ctx is done or Kill is called.
	Launch(ctx context.Context, spec *LaunchSpec) (Process, error)
}

// LaunchSpec is one program of an external plugin, or an upstream MCP
// server of the policy's servers section.
type LaunchSpec struct {
	// Plugin names the plugin, for logs and audit records.
	Plugin string
	// Server, when set, names the upstream MCP server (servers.<name>)
	// the process is, instead of Plugin: every start is audited (kind
	// upstream), in a tool call or not.
	Server string
	// Dir is the plugin directory (absolute): readable and executable by
	// the process, and its working directory. An upstream server has
	// none: it runs in / and may execute only its program and the
	// interpreters its #! lines name.
	Dir string
	// Path is the program to start: an absolute path, or a bare name found
	// in the system directories (an interpreter the manifest names).
	Path string
	// Args is argv, argv[0] included.
	Args []string
	// Env is the whole environment the plugin asks for (besides a fixed
	// PATH and locale); a name on the refused list ([EnvRefusal]) is an
	// error.
	Env map[string]string
	// EnvFrom are the server's variables the values of Env were taken
	// from (an upstream's ${VAR}); none may be the server's own
	// ([IsOwnEnv]).
	EnvFrom []string
	// ReadOnly are further paths the process may read (an upstream's
	// sandbox.read, its TLS and resolver files); one that holds, or lies
	// within, one of the server's own files is an error.
	ReadOnly []string
	// Paths, when not nil, narrows the directories the process may read
	// and write to those below both a path here and an allowed path of
	// the policy.
	Paths *[]string
	// Ports, when not nil, narrows the TCP ports the process may connect
	// to to those the policy allows too.
	Ports *[]int
	// LongLived marks a process that serves many calls: its CPU limit is
	// not the tool timeout.
	LongLived bool
	// SHA256, when set, is the sha256 (hex) a manifest pins for the file
	// at SHA256Path (its executable: Path, or the script an interpreter
	// is given); every start checks it and refuses another file.
	SHA256, SHA256Path string
}

// Who names the program's owner for messages: "plugin X" or "upstream
// server X".
func (s *LaunchSpec) Who() string {
	if s.Server != "" {
		return "upstream server " + s.Server
	}
	return "plugin " + s.Plugin
}

// ErrLauncherStopped is what Process.Wait returns when the sandbox's
// launcher of the process was stopped by a signal (its target can send
// it one) and was killed with everything it started.
var ErrLauncherStopped = errors.New("its sandbox launcher was stopped by a signal, and was killed with everything it started")

// Process is a started plugin process.
type Process interface {
	// Stdin is the process's standard input.
	Stdin() io.WriteCloser
	// Stdout and Stderr are its output; read them concurrently with Wait.
	Stdout() io.ReadCloser
	Stderr() io.ReadCloser
	// Wait waits until the process and everything it started are gone and
	// returns its exit code (128+n when signal n killed it); err is set
	// when it could not be run or waited for, and is ErrLauncherStopped
	// when the tree was killed because its launcher was stopped.
	Wait() (code int, err error)
	// Kill ends the process and everything it started.
	Kill()
	// Pid is the process id of the tree's leader (the sandbox launcher on
	// Linux).
	Pid() int
}
