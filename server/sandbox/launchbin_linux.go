//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// launcherExe is the program every launcher is started from.
type launcherExe struct {
	path   string // what to execute
	argv0  string // its argv[0]
	desc   string // for the log
	pinned int    // the descriptor path names, or -1
}

// theLauncher is found once per process: the separate binary when it is
// usable, else this binary re-executed.
var theLauncher = sync.OnceValue(func() launcherExe {
	exe, err := os.Executable()
	if err != nil {
		return selfLauncher(fmt.Sprintf("the server's executable is unknown: %v", err))
	}
	return findLauncher(filepath.Join(filepath.Dir(exe), LauncherName))
})

// selfLauncher re-executes the running binary; why, when not empty, says
// why the separate launcher is not used.
func selfLauncher(why string) launcherExe {
	l := launcherExe{path: "/proc/self/exe", argv0: os.Args[0], desc: "the server's own binary, re-executed", pinned: -1}
	if why != "" {
		l.desc += " (" + why + ")"
	}
	return l
}

// LauncherDesc says which program starts sandboxed children, for the
// start-up log. The first call looks for the separate launcher.
func LauncherDesc() string { return theLauncher().desc }

// findLauncher pins the launcher binary at path and checks that it
// answers the probe with this binary's protocol; otherwise the server
// re-executes itself.
//
// The binary is held open and executed through its descriptor, so the
// file checked is the file run for the life of the server, whatever
// happens to the path later (an upgrade replacing it, say). It must be
// a regular file owned by root or by the server's user and writable by
// no one else: it runs unconfined, as the server does.
func findLauncher(path string) launcherExe {
	fd, err := pinLauncher(path)
	if errors.Is(err, fs.ErrNotExist) {
		return selfLauncher("")
	}
	if err != nil {
		return selfLauncher(fmt.Sprintf("%s not used: %v", path, err))
	}
	l := launcherExe{path: "/proc/self/fd/" + strconv.Itoa(fd), argv0: LauncherName, desc: path, pinned: fd}
	if err := probeLauncher(l); err != nil {
		unix.Close(fd)
		return selfLauncher(fmt.Sprintf("%s not used: %v", path, err))
	}
	return l
}

// pinnedFDMin is the lowest descriptor number a pinned launcher gets:
// above those a child's descriptors are moved to between fork and exec
// (stdio, the control and report pipes, and os/exec's own shuffling),
// so that /proc/self/fd/N still names the launcher when the child
// executes it.
const pinnedFDMin = 64

func pinLauncher(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, fmt.Errorf("stat: %w", err)
	}
	if err := trustedExecutable(st, os.Geteuid()); err != nil {
		return -1, err
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, pinnedFDMin)
	if err != nil {
		return -1, fmt.Errorf("pinning: %w", err)
	}
	return high, nil
}

// trustedExecutable refuses a launcher binary that someone other than
// root or the server's user (euid) could have written.
func trustedExecutable(st unix.Stat_t, euid int) error {
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return errors.New("not a regular file")
	case st.Mode&0o111 == 0:
		return errors.New("not executable")
	case st.Uid != 0 && int(st.Uid) != euid:
		return fmt.Errorf("owned by uid %d, neither root nor the server's user", st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("writable by group or others (mode %#o)", st.Mode&0o777)
	}
	return nil
}

// probeWait bounds the probe of a launcher binary.
const probeWait = 10 * time.Second

// probeLauncher runs l asking for its protocol.
func probeLauncher(l launcherExe) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.path)
	cmd.Args = []string{l.argv0, launcherArg, probeArg}
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &out, n: 256}
	err := startChild(cmd)
	if err == nil {
		err = waitChild(cmd)
	}
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if got := out.String(); got != probeAnswer {
		return fmt.Errorf("probe: it speaks %q, not %q", bytes.TrimSpace(out.Bytes()), launcherProtocol)
	}
	return nil
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	n   int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.n - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
