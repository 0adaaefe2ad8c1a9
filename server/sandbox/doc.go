// Package sandbox starts child processes confined to what the policy
// allows. The command door uses it for every process a tool starts;
// external plugins and upstream MCP servers start their children through
// it too.
//
// # How a child is started
//
// [Command] starts a launcher, which confines itself and then executes
// the target. The launcher is mcp-secure-launch ([LauncherName], built
// from cmd/mcp-secure-launch) when it sits in the directory of the
// server's executable, is a regular file owned by root or the server's
// user and writable by no one else, and answers a probe with this
// package's protocol; the server opens it once, checks it, and executes
// it through that descriptor from then on, so a file later put at its
// path is never run. Otherwise the server re-executes its own binary
// (/proc/self/exe), which starts several times slower: it is a large
// program. [LauncherDesc] says which one is used. Either way
// [RunIfLauncher], called from this package's init (and first thing in
// main, to say so), takes over when the hidden first argument is
// present; any binary that imports this package, test binaries included,
// can be a launcher. A launcher asked for another protocol than its own
// refuses before doing anything. The launcher:
//
//   - marks itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every
//     descendant whose parent dies, including those that called setsid or
//     forked twice, is re-parented to it rather than to init;
//   - gets SIGTERM if the server dies (parent-death signal) and holds the
//     read end of a control pipe whose write end only the server has: EOF
//     on it, from a crash, a SIGKILL or a cancelled call, ends the child;
//   - makes itself not dumpable: the thread that forks the target shares
//     the target's Landlock domain, which would otherwise let the target
//     ptrace it and write to the memory of the launcher's unconfined
//     threads;
//   - sets the rlimits, then gives the one thread that will fork the
//     target no_new_privs, empty capability sets (bounding and ambient
//     included, so even a root server's child holds no capability), its
//     Landlock domain and the socket filter (all are per thread and
//     inherited through fork and execve), and starts the target from it;
//     the launcher's other threads stay unconfined, to read /proc and
//     reap;
//   - starts the target at nice 10, so that a tree keeping every CPU
//     busy does not starve the launcher's threads that count, kill and
//     reap it (the thread that forked the target, niced with it, only
//     waits);
//   - counts the processes of the tree every 20 ms and kills the tree
//     when they are more than [Limits].Processes;
//   - is killed, with its process group, by the server (its parent, told
//     by SIGCHLD) if it is ever stopped: a stopped launcher counts and
//     kills nothing, and its target can stop it;
//   - when the target exits, or the server goes, kills every process left
//     below it (SIGKILL, repeated until nothing is left to reap) and exits
//     with the target's status (128+signal when it was killed by one);
//   - reports setup failures ("landlock: ...", "fork/exec ...") to the
//     server over a second pipe, returned by [Cmd.Wait] as a [*SetupError];
//     over the same pipe it reports the target started and, once the
//     target has ended and nothing else of its tree is left (the
//     launcher has no child left to reap), the target's status:
//     [Cmd.Wait] of a piped target that exited 0 returns then, and the
//     launcher's exit happens after.
//
// What does not depend on the target (no_new_privs, the capabilities,
// the probe of the kernel, the socket filter, which the server's command
// line names for targets with UDP allowed or not) the launcher does
// before it reads the target, and it refuses a target of the other kind;
// a signal that arrives before the target ends it at once.
//
// [Piped] starts a target whose standard streams are pipes (external
// plugins and upstream servers): it takes a launcher started ahead of
// the call with fresh pipes as its standard streams, waiting for its
// target on the control pipe. Two such launchers wait, oldest taken
// first, so the one a call takes has finished starting even when the
// calls come back to back; once a target is done another is started for
// a later call, in the background (not while the target runs, which it
// would take CPU from). The launcher's own start-up (a Go runtime's,
// some milliseconds of CPU) then runs off the call's path; the launcher
// does nothing that depends on the target before it has it, and the
// call's context ends it and its tree as it does a launcher started with
// the call. A warm launcher that died while it waited is replaced.
//
// The hook runs from this package's init. In mcp-secure-launch, which
// holds little more than this package, a launcher costs one small
// process start; re-executing the server's binary also pays for
// starting a large program (its runtime set-up and the initialisation
// of the packages this one sorts after).
//
// # Confinement
//
// [Rules] say what the child may touch. Landlock (ABI 4 or later is
// required, for TCP) then allows:
//
//   - read and write (create, remove, truncate, rename within; never
//     execute) below each ReadWrite path;
//   - read below each ReadOnly path;
//   - read and execute of each Exec file, and nothing else can be started
//     with execve: a child cannot start /bin/sh or /usr/bin/curl unless
//     they are listed. The dynamic loader is executable (every dynamically
//     linked program needs it), and it maps any file the child can read:
//     a child that can run code can run a readable program through it.
//     Such a program is held to the same rules: filesystem, TCP, and the
//     socket filter below, which a child cannot shed;
//   - TCP connect only to the ConnectTCP ports, TCP bind never;
//   - with ABI 6 or later, no signals to processes outside the sandbox and
//     no abstract unix sockets outside it.
//
// Landlock (up to ABI 7) does not confine UDP, pathname unix sockets or
// other address families, and its port rules are written for TCP
// (MPTCP and SCTP streams are not trusted to them). A
// seccomp-BPF socket filter (see seccomp_linux.go) therefore lets a child
// create only: TCP stream sockets (AF_INET, AF_INET6; protocol 0 or
// IPPROTO_TCP), unix sockets through socketpair (stream or seqpacket,
// whose ends cannot be reconnected), and route netlink sockets (queries
// about interfaces and routes). socket(AF_UNIX) and UDP sockets fail with
// EACCES, other families with EAFNOSUPPORT, io_uring with ENOSYS; a
// system call of another ABI (x32, 32-bit x86, AArch32) kills the
// process. [Rules].AllowUDP lets UDP sockets through, to any address: the
// filter cannot read the address a datagram goes to, so it cannot keep
// UDP to port 53. The filter is built for amd64 and arm64; elsewhere
// children cannot be confined.
//
// [SystemReadOnly] lists what dynamically linked programs need to start:
// the library directories, /usr/share, /etc/ld.so.cache and a few
// non-secret files of /etc. The dynamic loader named by an ELF
// executable's PT_INTERP is found with [Interpreter] and belongs in Exec.
//
// Not covered, by Landlock's design or by the ABI this package handles
// (up to 7): Landlock cannot carve a denied file out of an allowed
// directory (a child may read a filesystem.denied_paths file inside an
// allowed root); TCP ports are allowed for every host, not only the
// endpoint that named them (Landlock's port rules have no address);
// with AllowUDP, UDP reaches every host and port; /proc and /tmp are not
// reachable (a child writes its temporary files in an allowed directory).
// Socket refusals happen in the kernel and are not audited.
//
// # Limits
//
// [DefaultLimits]: CPU time 60 s (RLIMIT_CPU; the command door uses the
// policy's tool timeout), data segment 2 GiB
// (RLIMIT_DATA, which counts anonymous mappings), files up to 1 GiB
// (RLIMIT_FSIZE), 1024 open files, no core dumps, and 256 processes in
// the tree at once. The process limit is counted by the launcher, the
// subreaper of the whole tree, every 20 ms: a tree that forks as fast as
// it can outgrows it by what it forks in 20 ms before it is killed
// (SIGKILL to all; the target's status is then 137, and its stderr says
// why). RLIMIT_NPROC cannot bound a tree: it counts every task (threads
// too) of the real user, in every pid namespace, and the kernel never
// enforces it for uid 0, capabilities or not.
//
// Without Landlock (another OS, an old kernel, Landlock disabled, or
// MCP_SECURE_NO_LANDLOCK set) [Probe] says why, and a child runs only when
// the caller sets [Target].Unconfined; on Linux it still gets the
// launcher, rlimits, the process limit, no_new_privs, no capabilities and
// (where the kernel has seccomp) the socket filter.
//
// # Using it
//
//	c := sandbox.Command(ctx, sandbox.Target{
//		Path: "/usr/bin/git", Args: []string{"git", "status"}, Env: env, Dir: dir,
//		Rules: sandbox.Rules{
//			ReadWrite: []string{dir},
//			ReadOnly:  sandbox.SystemReadOnly,
//			Exec:      sandbox.Executables("/usr/bin/git"),
//		},
//	})
//	c.Stdout, c.Stderr = &out, &errs // or StdinPipe/StdoutPipe for a long-lived child
//	err := c.Run()
//
// The command door's guard.Commands.Rules builds Rules from the policy
// (roots read-write, system paths read-only, the endpoints' TCP ports).
package sandbox
