package plugin

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// The environment of a child process: the one list of the variables that
// no child may be handed, whoever asks (a tool through [Commands], the
// env of an external plugin's manifest, the env of an upstream MCP
// server in the policy's servers section). A name on it is refused, with
// the name, before anything starts: never silently dropped.
//
// Two kinds of names are refused:
//
//   - Injection: variables that make a loader, shell or interpreter run
//     code or read configuration the child did not ask for (LD_PRELOAD,
//     NODE_OPTIONS, BASH_ENV, PYTHONSTARTUP, GIT_SSH_COMMAND, ...), and
//     those that redirect where it looks or connects (PATH, HOME, the
//     proxy variables). The door sets PATH and HOME itself. A few names
//     in those families that only set a mode or log level pass
//     (NODE_ENV, PYTHONUNBUFFERED, RUST_LOG, ...).
//   - The server's own: variables mcp-secure reads for its credentials or
//     configuration (OTEL_* for the exporters, their headers included;
//     MCP_SECURE_*; the bundle token variable of --bundle-token-env; and
//     every variable the policy itself takes with ${VAR}, such as a
//     decision-log token or a plugin's key; the door is told the last two
//     at start-up, then the ${VAR} of each policy a reload reads, and
//     forgets none while the process runs). Their values may not reach a
//     child under any name: an upstream's ${VAR} may not name one either.

// envName is what a variable handed to a child may be called.
var envName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`) })

// injectionEnv are single variables that change how a process loads or
// runs code, or where it looks for its files and network.
var injectionEnv = []string{
	"PATH", "HOME", "SHELL", "TMPDIR", "USER", "LOGNAME", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
	"GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "LOCALDOMAIN", "RES_OPTIONS",
	"NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB",
	"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "CLASSPATH", "MAVEN_OPTS", "GRADLE_OPTS", "ZDOTDIR", "SSLKEYLOGFILE",
	"CC", "CXX", "CPP", "LD", "AR", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS",
	"EDITOR", "VISUAL", "PAGER", "BROWSER", "TERMINFO", "TERMINFO_DIRS", "LESSOPEN", "LESSCLOSE", "MANPAGER",
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
}

// injectionPrefixes cover whole families: the dynamic loaders (glibc,
// macOS), shells, version control and ssh, the interpreters, their
// toolchains and package managers (GO covers every Go toolchain variable,
// GOCACHEPROG and GOAUTH among them, which run a program of their
// choosing), per-user configuration lookups, TLS libraries.
var injectionPrefixes = []string{
	"LD_", "DYLD_", "BASH", "GLIBC_", "MALLOC_", "GCONV", "GIT_", "SSH_", "GPG", "XDG_",
	"PYTHON", "PERL", "RUBY", "NODE_", "NPM_", "JAVA", "_JAVA", "JDK_", "CARGO_", "RUST",
	"GO", "CGO_", "PIP_", "UV_", "GEM_", "BUNDLE_", "DENO_", "BUN_", "ERL_", "COR_", "CORECLR_", "COMPLUS_",
	"LUA_", "PHP", "TCL", "R_", "DOTNET_", "CURL_", "WGET", "SUDO_", "KRB5", "OPENSSL_", "SSL_",
}

// harmlessEnv are names within the refused families that only set a
// mode or a log level, common in MCP servers' configurations.
var harmlessEnv = []string{
	"NODE_ENV", "NODE_NO_WARNINGS", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONUTF8", "RUST_LOG", "RUST_BACKTRACE",
	"GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GOTRACEBACK",
}

// harmlessPrefixes are families that merely share a refused prefix
// (GOOGLE_ is not GO's).
var harmlessPrefixes = []string{"GOOGLE_"}

// ownPrefixes are the server's own variables: its telemetry exporters'
// settings and headers, and its own settings.
var ownPrefixes = []string{"OTEL_", "MCP_SECURE_"}

// EnvRefusal says why a child process may not be given the variable
// name, or "" when it may. own are further variables the server reads
// for its credentials (the bundle token variable, the policy's ${VAR}).
func EnvRefusal(name string, own []string) string {
	if !envName().MatchString(name) {
		return "not a variable name"
	}
	if IsOwnEnv(name, own) {
		return "it is the server's own (credentials or configuration)"
	}
	up := strings.ToUpper(name)
	if slices.Contains(harmlessEnv, name) || hasAnyPrefix(name, harmlessPrefixes) {
		return ""
	}
	if slices.Contains(injectionEnv, up) || hasAnyPrefix(up, injectionPrefixes) {
		return "it changes how a program loads code or where it looks"
	}
	return ""
}

// IsOwnEnv says whether name is one of the server's own variables, whose
// value must not reach a child under any name: OTEL_*, MCP_SECURE_*, or
// one of own.
func IsOwnEnv(name string, own []string) bool {
	return hasAnyPrefix(strings.ToUpper(name), ownPrefixes) || slices.Contains(own, name)
}

// CheckEnv is EnvRefusal as an error naming the variable.
func CheckEnv(name string, own []string) error {
	if why := EnvRefusal(name, own); why != "" {
		return fmt.Errorf("environment variable %s is refused: %s", name, why)
	}
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
