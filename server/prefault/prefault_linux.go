//go:build linux

package prefault

import (
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault the
// range in, writable, as if each page had been written.
const madvPopulateWrite = 23

// chunk is the granule in which the Go runtime maps its heap (the page
// allocator's chunk, 4 MiB on 64-bit Linux): the chunk that holds a heap
// object is mapped whole.
const chunk = 4 << 20

// probe keeps the first object on the heap, where the runtime put it.
var probe *[64]byte

// populated is the start of the chunk the kernel was asked to populate,
// and errno its answer (0: done).
var (
	populated uintptr
	errno     syscall.Errno
)

func init() {
	if v, ok := syscall.Getenv("MCP_SECURE_PREFAULT"); ok && v == "0" {
		return
	}
	probe = new([64]byte)
	start := uintptr(unsafe.Pointer(probe)) &^ (chunk - 1)
	// Best effort: an older kernel refuses the advice (EINVAL), and the
	// pages then fault in as they always did.
	_, _, errno = syscall.Syscall(syscall.SYS_MADVISE, start, chunk, madvPopulateWrite)
	populated = start
	probe = nil
}
