// Package prefault makes the start of the process cheaper where a page
// fault is expensive (a virtual machine whose every fault exits to the
// hypervisor): imported for its side effect, it asks the kernel, once and
// before the heavier packages initialise, to back the rest of the Go
// heap's first chunk with memory (madvise MADV_POPULATE_WRITE, Linux 5.14
// and later), so the allocations of package initialisation and of the
// first requests find their pages already there instead of faulting them
// in one at a time.
//
// The cost is resident memory: at most one chunk (4 MiB) the process would
// otherwise take page by page as its heap grows, which a server that
// compiles a policy at start does within its first milliseconds. Nothing
// else changes: on other systems, on older kernels (the advice is
// refused) and with MCP_SECURE_PREFAULT=0 in the environment, the
// package does nothing.
//
// It has no dependency but the standard library's syscall package, so it
// initialises among the first packages of the program.
package prefault
