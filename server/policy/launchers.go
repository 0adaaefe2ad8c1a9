package policy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

func init() { warners = append(warners, launcherWarnings, sandboxWarnings) }

// launchers are programs that start other programs, by what makes them
// one. In the sandbox such a program can start only executables
// commands.allowed lists, but with arguments no decision sees.
var launchers = map[string]string{
	"git":      "runs programs from aliases (-c alias.x='!cmd'), hooks, and -c core.pager, core.sshCommand, core.editor, diff and merge drivers",
	"env":      "runs whatever program its arguments name",
	"find":     "runs programs with -exec, -execdir, -ok and -okdir",
	"xargs":    "runs whatever program its arguments name",
	"awk":      "runs shell commands through system() and pipes to or from commands",
	"sed":      "runs shell commands with GNU sed's e command and the s///e flag",
	"tar":      "runs commands with --to-command, --use-compress-program (-I) and --checkpoint-action=exec",
	"zip":      "runs a command with -TT/--unzip-command",
	"rsync":    "runs a command with -e/--rsh and --rsync-path",
	"ssh":      "runs local commands with -o ProxyCommand and LocalCommand",
	"scp":      "runs a command with -S and -o ProxyCommand",
	"make":     "runs the recipes of whatever Makefile it reads",
	"less":     "runs shell commands with ! and through LESSOPEN",
	"more":     "runs shell commands with !",
	"man":      "runs a pager and preprocessors it is told to",
	"vi":       "runs shell commands with :! and :terminal",
	"vim":      "runs shell commands with :! and :terminal",
	"nvim":     "runs shell commands with :! and :terminal",
	"emacs":    "evaluates code and runs shell commands",
	"nice":     "runs whatever program its arguments name",
	"nohup":    "runs whatever program its arguments name",
	"timeout":  "runs whatever program its arguments name",
	"stdbuf":   "runs whatever program its arguments name",
	"setsid":   "runs whatever program its arguments name",
	"time":     "runs whatever program its arguments name",
	"watch":    "runs a shell command it is given",
	"flock":    "runs whatever program its arguments name",
	"chroot":   "runs whatever program its arguments name",
	"strace":   "runs whatever program its arguments name",
	"ltrace":   "runs whatever program its arguments name",
	"gdb":      "runs programs and shell commands",
	"parallel": "runs the commands it is given",
	"script":   "runs a shell or the command given with -c",
	"tmux":     "runs shells and commands",
	"screen":   "runs shells and commands",
	"sudo":     "runs whatever program its arguments name, as another user",
	"su":       "runs a shell as another user",
	"doas":     "runs whatever program its arguments name, as another user",
	"busybox":  "is a shell and every other tool in one",
	"npm":      "runs package scripts",
	"npx":      "runs package binaries",
	"pip":      "runs package build code",
	"pip3":     "runs package build code",
	"cargo":    "runs build scripts and the programs it builds",
	"go":       "runs the programs it builds and code generators (go run, go generate, toolexec)",
	"docker":   "runs containers as it is told",
	"kubectl":  "runs commands in containers (exec)",
}

// shellsAndInterpreters match by name, version suffixes included
// (python3.11, perl5.36.0): see isShellOrInterpreter.
var shellsAndInterpreters = map[string]bool{}

func init() {
	for n := range strings.FieldsSeq("sh bash dash zsh ksh mksh csh tcsh fish ash python pypy perl ruby node nodejs deno bun php lua luajit tclsh wish rscript r osascript pwsh java jshell groovy scala julia guile racket sbcl ghci runghc expect") {
		shellsAndInterpreters[n] = true
	}
}

// isShellOrInterpreter reports whether name is one of
// shellsAndInterpreters followed by any run of digits, '.', '_' and '-'
// (none of the names ends in one of those).
func isShellOrInterpreter(name string) bool {
	return shellsAndInterpreters[strings.TrimRight(name, "0123456789._-")]
}

// launcherWarnings names each allowed executable that can start other
// programs, and why.
func launcherWarnings(p *Policy, _ []string) []string {
	if p.Commands.Allowed == nil {
		return nil
	}
	var out []string
	for _, entry := range *p.Commands.Allowed {
		name := strings.ToLower(filepath.Base(strings.TrimSpace(entry)))
		why, ok := launchers[name]
		if !ok && isShellOrInterpreter(name) {
			why, ok = "is a shell or interpreter: it runs any code it is given (-c, -e, a script)", true
		}
		if ok {
			out = append(out, fmt.Sprintf("commands.allowed: %q can launch other programs: it %s. In the sandbox it can start only what commands.allowed lists (and, through the dynamic loader, any program it can read), with arguments no decision sees.", entry, why))
		}
	}
	return out
}

// ChildPorts are the TCP ports the command sandbox lets children connect
// to: the ports of network.allowed_endpoints, less network.blocked_ports.
// Children connect to these ports on any host (Landlock knows ports, not
// hosts); network.allowed_ranges name no ports and add none.
func (p *Policy) ChildPorts() []uint16 {
	var out []uint16
	for _, e := range p.Network.AllowedEndpoints {
		for _, port := range e.Ports {
			if port > 0 && port <= 65535 && !slices.Contains(p.Network.BlockedPorts, port) && !slices.Contains(out, uint16(port)) {
				out = append(out, uint16(port))
			}
		}
	}
	slices.Sort(out)
	return out
}

// sandboxWarnings say what the command sandbox cannot hold to the policy.
func sandboxWarnings(p *Policy, _ []string) []string {
	if p.Commands.Allowed != nil && len(*p.Commands.Allowed) == 0 {
		return nil // nothing runs
	}
	var out []string
	if len(p.Filesystem.DeniedPaths) > 0 && len(p.Roots()) > 0 {
		out = append(out, "filesystem.denied_paths: commands run in a sandbox that allows whole directories (the static part of each allowed_paths pattern); a command can read and write a denied file inside an allowed directory")
	}
	for _, r := range p.Roots() {
		if r == "/" {
			out = append(out, "filesystem.allowed_paths: a pattern that starts with ** gives commands no access at all (the sandbox would otherwise allow the whole filesystem)")
			break
		}
	}
	if p.Commands.Unconfined {
		out = append(out, "commands.unconfined: commands run without Landlock: they can read, write and connect over TCP wherever the server's user can")
	}
	if p.Commands.AllowUDP {
		out = append(out, "commands.allow_udp: commands can send UDP datagrams to any host and port, not only to DNS servers (the sandbox cannot see a datagram's address)")
	}
	return out
}
