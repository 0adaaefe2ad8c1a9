// Package guard holds the only doors from a tool handler to the world.
// Each door asks the policy before it acts, audits the decision linked to
// the tool call that caused it (its decision id travels on the context,
// see [WithCall]), and refuses with a [DeniedError] whose message names
// what was blocked and why.
//
// # Network
//
// [Network] dials on behalf of plugins. A host name is first decided in the
// resolve phase (may it be looked up at all?), then every address it
// resolves to is decided again in the dial phase, from the dialer's
// ControlContext, on the IP and port actually being connected. Redirects are
// new dials and are decided again. Decisions are memoised per policy
// snapshot, so the cost of a repeated dial is a map lookup. A connection
// refused before the policy could be asked (a malformed address, a zoned
// IPv6 literal, another network than TCP) is audited too.
//
// # Filesystem
//
// [Files] decides a path on its cleaned absolute form, then opens it
// through an os.Root anchored at the allowed directory that holds it, so
// ".." and symlinks cannot leave it, and decides the real path of what it
// opened again. Writes, creations and deletions work relative to a
// confirmed parent directory with the *at system calls. FIFOs and devices
// are refused without blocking; a path that leads out of its root is an
// audited refusal.
//
// # Commands
//
// [Commands] runs argv, never a shell. The executable is decided by what
// it is: its real file, device and inode, whether a tool could have
// written or swapped it, and the interpreters of its "#!" line. Children
// run through server/sandbox: a scrubbed environment, rlimits,
// no_new_privs, Landlock confinement to the policy's directories and
// ports (the server's own files carved out), and a subreaper that kills
// whatever they leave behind.
//
// # Launcher
//
// [Commands] is also the [plugin.Launcher] door: external plugins and
// the upstream MCP servers of the policy's servers section start their
// programs through it, trusted by the policy rather than commands.allowed
// but confined the same way. It follows the whole "#!" chain (nested
// scripts and /usr/bin/env included, up to four interpreters), narrows
// the policy's paths and ports as the plugin or server asks, refuses a
// read-only path that would expose the server's own files, and audits
// every start of an upstream (kind upstream). The environment of every
// child, whichever door starts it, is checked against the one list of
// [plugin.EnvRefusal].
package guard
