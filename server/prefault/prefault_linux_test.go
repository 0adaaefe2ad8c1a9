package prefault

import (
	"os"
	"os/exec"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of the heap chunk at start that are in
// memory.
func resident(t *testing.T, start uintptr) (n, of int) {
	t.Helper()
	page := os.Getpagesize()
	vec := make([]byte, chunk/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, start, chunk, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, len(vec)
}

// The chunk of the heap that holds the program's first objects is in
// memory once the package has initialised, before anything used most of
// it; with MCP_SECURE_PREFAULT=0 it is not (the check can fail).
func TestFirstHeapChunkIsResident(t *testing.T) {
	if os.Getenv("PREFAULT_CHILD") == "off" {
		// Re-executed with the package turned off: report what is in.
		p := new([64]byte)
		n, of := resident(t, uintptr(unsafe.Pointer(p))&^(chunk-1))
		if n == of {
			t.Fatalf("every page of the chunk is in memory with the package off (%d of %d): the check cannot tell", n, of)
		}
		return
	}
	if errno == unix.EINVAL {
		t.Skip("the kernel predates MADV_POPULATE_WRITE (Linux 5.14)")
	}
	if errno != 0 || populated == 0 {
		t.Fatalf("populating the first heap chunk: errno %v, start %#x", errno, populated)
	}
	if n, of := resident(t, populated); n != of {
		t.Errorf("%d of %d pages of the first heap chunk are in memory, want all", n, of)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFirstHeapChunkIsResident$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PREFAULT_CHILD=off", "MCP_SECURE_PREFAULT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("with MCP_SECURE_PREFAULT=0: %v\n%s", err, out)
	}
}
