// Package sandbox starts child processes confined to what the policy
// allows. The command door uses it for every process a tool starts;
// external plugins and upstream MCP servers start their children through
// it too.
//
// # How a child is started
//
// [Command] re-executes the server's own binary (/proc/self/exe) as a
// launcher: [RunIfLauncher], called from this package's init (and first
// thing in main, to say so), takes over when the hidden first argument is
// present; any binary that imports this package, test binaries included,
// can be a launcher. The launcher:
//
//   - marks itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every
//     descendant whose parent dies, including those that called setsid or
//     forked twice, is re-parented to it rather than to init;
//   - gets SIGTERM if the server dies (parent-death signal) and holds the
//     read end of a control pipe whose write end only the server has: EOF
//     on it, from a crash, a SIGKILL or a cancelled call, ends the child;
//   - sets the rlimits, then gives the one thread that will fork the
//     target no_new_privs, empty capability sets (bounding and ambient
//     included, so even a root server's child holds no capability) and its
//     Landlock domain (both are per thread and
//     inherited through fork and execve), and starts the target from it;
//     the launcher's other threads stay unconfined, to read /proc and
//     reap;
//   - when the target exits, or the server goes, kills every process left
//     below it (SIGKILL, repeated until nothing is left to reap) and exits
//     with the target's status (128+signal when it was killed by one);
//   - reports setup failures ("landlock: ...", "fork/exec ...") to the
//     server over a second pipe, returned by [Cmd.Wait] as a [*SetupError].
//
// The hook runs from this package's init, before the heavier packages of
// the binary initialise, so a launcher costs one small process start.
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
//     Such a program is held to the same filesystem and TCP rules, but
//     Landlock (up to ABI 7) does not confine UDP or connecting to a unix
//     socket by path;
//   - TCP connect only to the ConnectTCP ports, TCP bind never;
//   - with ABI 6 or later, no signals to processes outside the sandbox and
//     no abstract unix sockets outside it.
//
// [SystemReadOnly] lists what dynamically linked programs need to start:
// the library directories, /usr/share, /etc/ld.so.cache and a few
// non-secret files of /etc. The dynamic loader named by an ELF
// executable's PT_INTERP is found with [Interpreter] and belongs in Exec.
//
// Not covered, by Landlock's design or by the ABI this package handles
// (up to 7): Landlock cannot carve a denied file out of an allowed
// directory (a child may read a filesystem.denied_paths file inside an
// allowed root); UDP is not confined; connecting to a pathname unix socket
// (say /run/docker.sock) is held only by the socket file's owner and mode; TCP ports are allowed for every host, not only the
// endpoint that named them; /proc and /tmp are not reachable (a child
// writes its temporary files in an allowed directory).
//
// # Limits
//
// [DefaultLimits]: CPU time 60 s (RLIMIT_CPU; the command door uses the
// policy's tool timeout), data segment 2 GiB
// (RLIMIT_DATA, which counts anonymous mappings), files up to 1 GiB
// (RLIMIT_FSIZE), 1024 open files, no core dumps. RLIMIT_NPROC is not set:
// it counts every process of the user (and root ignores it); the
// subreaper ends the whole tree with the call instead.
//
// Without Landlock (another OS, an old kernel, Landlock disabled, or
// MCP_SECURE_NO_LANDLOCK set) [Probe] says why, and a child runs only when
// the caller sets [Target].Unconfined; on Linux it still gets the
// launcher, rlimits, no_new_privs and no capabilities.
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
