package sandbox

import (
	"errors"
	"fmt"
	"time"
)

// ErrLauncherStopped is returned by Wait when the launcher was stopped by
// a signal (its target can send it one) and was killed with its tree
// (Linux).
var ErrLauncherStopped = errors.New("sandbox: the launcher was stopped by a signal; it was killed with everything it started")

// Rules are what one child may reach. Paths must be absolute; a path that
// does not exist is skipped.
type Rules struct {
	// ReadWrite are directories (or files) the child may read and change,
	// but never execute from.
	ReadWrite []string
	// ReadOnly are directories (or files) the child may read.
	ReadOnly []string
	// Exec are the files the child may execute (and read): the target, its
	// #! interpreters, their dynamic loader, and whatever else it may start.
	Exec []string
	// ConnectTCP are the TCP ports the child may connect to, on any host.
	ConnectTCP []uint16
	// AllowUDP lets the child open UDP sockets and send datagrams to any
	// host and port (the socket filter cannot see the address, and
	// Landlock does not confine UDP). Without it, UDP sockets are refused.
	AllowUDP bool
}

// Limits are a child's resource limits; a zero field keeps the default of
// [DefaultLimits].
type Limits struct {
	CPU       time.Duration // RLIMIT_CPU
	Data      uint64        // RLIMIT_DATA, bytes
	FileSize  uint64        // RLIMIT_FSIZE, bytes
	OpenFiles uint64        // RLIMIT_NOFILE
	// Processes bounds how many processes the target's tree may hold at
	// once, the target included; the launcher kills the whole tree when
	// it counts more (see the package documentation).
	Processes uint64
}

// DefaultLimits are the limits of a child that asks for none.
func DefaultLimits() Limits {
	return Limits{CPU: 60 * time.Second, Data: 2 << 30, FileSize: 1 << 30, OpenFiles: 1024, Processes: 256}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.CPU <= 0 {
		l.CPU = d.CPU
	}
	if l.Data == 0 {
		l.Data = d.Data
	}
	if l.FileSize == 0 {
		l.FileSize = d.FileSize
	}
	if l.OpenFiles == 0 {
		l.OpenFiles = d.OpenFiles
	}
	if l.Processes == 0 {
		l.Processes = d.Processes
	}
	return l
}

// Target is the program to run and the box to run it in.
type Target struct {
	Path string   // absolute path of the executable
	Args []string // argv, argv[0] included
	Env  []string // the whole environment
	Dir  string   // working directory
	Rules
	Limits Limits
	// Unconfined runs the target without Landlock (rlimits, no_new_privs,
	// the socket filter where the kernel has seccomp, and the launcher
	// still apply). Without it, Start fails where Landlock or the socket
	// filter is not available.
	Unconfined bool
	// Pinned, when set, is a file the caller checked (the executable, or
	// the script an interpreter runs, whose sha256 a manifest pins): just
	// before it starts the target, the launcher refuses to when the path
	// no longer names that same file, unchanged (Linux only).
	Pinned *PinnedFile `json:",omitempty"`
}

// ChecksPinned says the launcher checks a Target's Pinned file (Linux).
const ChecksPinned = checksPinned

// PinnedFile is a file as the caller checked it: its path, and the
// identity of the file the path named (device and inode, size,
// modification and change times in nanoseconds). A file replaced or
// renamed over has another inode; one written in place, another change
// time, which cannot be set back.
type PinnedFile struct {
	Path             string
	Dev, Ino         uint64
	Size             int64
	MtimeNs, CtimeNs int64
}

// LauncherName is the file name of the separate launcher binary
// (cmd/mcp-secure-launch), looked for in the directory of the server's
// executable (Linux only).
const LauncherName = "mcp-secure-launch"

// SystemReadOnly are the paths a dynamically linked program needs to
// start and find its data, and nothing secret: library directories,
// /usr/share, the loader cache and a few files of /etc.
var SystemReadOnly = []string{
	"/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32", "/usr/local/lib",
	"/usr/share", "/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/gitconfig",
	"/etc/ssl/openssl.cnf", // read by every program linked with OpenSSL 3 (node, python, curl) at start-up
}

// SystemReadWrite are device files a program may write to.
var SystemReadWrite = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random"}

// ErrUnavailable is returned by Start when confinement is asked for and
// the kernel cannot give it.
var ErrUnavailable = errors.New("sandbox: Landlock is not available")

// SetupError is a failure to start the target inside the sandbox, as the
// launcher reported it.
type SetupError struct{ Msg string }

func (e *SetupError) Error() string { return "sandbox: " + e.Msg }

// Support is what the kernel offers.
type Support struct {
	// ABI is the Landlock ABI version; 0 means none.
	ABI int
	// SocketFilter is true when the seccomp socket filter can be
	// installed (Linux on amd64 or arm64 with seccomp).
	SocketFilter bool
	// Reason says why children cannot be confined, when Confines is
	// false.
	Reason string
}

// NoLandlockEnv, set to anything, makes Probe report no Landlock: the
// server then behaves as on a kernel without it. That loosens nothing:
// without Landlock, children run only when the caller (the policy's
// commands.unconfined) asks to run them unconfined.
const NoLandlockEnv = "MCP_SECURE_NO_LANDLOCK"

// MinABI is the lowest Landlock ABI that confines TCP.
const MinABI = 4

// Confines reports whether children can be confined: Landlock with TCP
// rules and the socket filter.
func (s Support) Confines() bool { return s.ABI >= MinABI && s.SocketFilter }

// SocketFilterDesc says what the socket filter lets a child open.
const SocketFilterDesc = "seccomp socket filter (sockets: TCP streams, unix only by socketpair, route netlink; no UDP unless allowed, no raw, packet or other families; no io_uring)"

// String is a one-line description for the start-up log.
func (s Support) String() string {
	if !s.Confines() {
		return "none (" + s.Reason + ")"
	}
	scope := "signals and abstract unix sockets scoped"
	if s.ABI < 6 {
		scope = "signals and abstract unix sockets not scoped (ABI < 6)"
	}
	return fmt.Sprintf("Landlock ABI %d (filesystem, TCP connect/bind; %s), %s, no_new_privs, no capabilities, rlimits, process limit, subreaper", s.ABI, scope, SocketFilterDesc)
}
