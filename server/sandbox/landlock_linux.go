//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock's ABI, spelled out: x/sys/unix has the constants but its
// ruleset struct carries fields newer kernels added, and the kernel takes
// the size we pass as the version of the struct.
type rulesetAttr struct {
	handledFS, handledNet, scoped uint64
}

type pathBeneathAttr struct {
	allowed  uint64
	parentFD int32
} // packed in the kernel: 12 bytes, the padding after it is not read

type netPortAttr struct {
	allowed uint64
	port    uint64
}

const (
	ruleNetPort = 2

	fsExecute    = unix.LANDLOCK_ACCESS_FS_EXECUTE
	fsWrite      = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	fsRead       = unix.LANDLOCK_ACCESS_FS_READ_FILE
	fsReadDir    = unix.LANDLOCK_ACCESS_FS_READ_DIR
	fsRemoveDir  = unix.LANDLOCK_ACCESS_FS_REMOVE_DIR
	fsRemoveFile = unix.LANDLOCK_ACCESS_FS_REMOVE_FILE
	fsMakeChar   = unix.LANDLOCK_ACCESS_FS_MAKE_CHAR
	fsMakeDir    = unix.LANDLOCK_ACCESS_FS_MAKE_DIR
	fsMakeReg    = unix.LANDLOCK_ACCESS_FS_MAKE_REG
	fsMakeSock   = unix.LANDLOCK_ACCESS_FS_MAKE_SOCK
	fsMakeFifo   = unix.LANDLOCK_ACCESS_FS_MAKE_FIFO
	fsMakeBlock  = unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK
	fsMakeSym    = unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	fsRefer      = unix.LANDLOCK_ACCESS_FS_REFER    // ABI 2
	fsTruncate   = unix.LANDLOCK_ACCESS_FS_TRUNCATE // ABI 3
	fsIoctlDev   = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

	fileRights = fsExecute | fsWrite | fsRead | fsTruncate | fsIoctlDev

	// What a ReadWrite path grants: everything but execute, devices,
	// fifos and sockets.
	rwRights = fsWrite | fsRead | fsReadDir | fsRemoveDir | fsRemoveFile | fsMakeDir | fsMakeReg | fsMakeSym | fsRefer | fsTruncate
	roRights = fsRead | fsReadDir
	exRights = fsRead | fsExecute
)

// handledFS is every filesystem right the given ABI knows: all are denied
// unless a rule grants them.
func handledFS(abi int) uint64 {
	h := uint64(fsExecute | fsWrite | fsRead | fsReadDir | fsRemoveDir | fsRemoveFile | fsMakeChar | fsMakeDir |
		fsMakeReg | fsMakeSock | fsMakeFifo | fsMakeBlock | fsMakeSym)
	if abi >= 2 {
		h |= fsRefer
	}
	if abi >= 3 {
		h |= fsTruncate
	}
	if abi >= 5 {
		h |= fsIoctlDev
	}
	return h
}

var probe = sync.OnceValue(func() Support {
	s := probeLandlock()
	if why := probeFilter(); why != "" {
		if s.Reason == "" {
			s.Reason = why
		}
	} else {
		s.SocketFilter = true
	}
	return s
})

func probeLandlock() Support {
	if os.Getenv(NoLandlockEnv) != "" {
		return Support{Reason: "Landlock turned off by " + NoLandlockEnv}
	}
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		switch errno {
		case unix.ENOSYS:
			return Support{Reason: "the kernel has no Landlock"}
		case unix.EOPNOTSUPP:
			return Support{Reason: "Landlock is disabled at boot (lsm=)"}
		}
		return Support{Reason: "Landlock: " + errno.Error()}
	}
	s := Support{ABI: int(v)}
	if s.ABI < MinABI {
		s.Reason = fmt.Sprintf("Landlock ABI %d cannot confine TCP (need %d)", s.ABI, MinABI)
	}
	return s
}

// Probe reports the kernel's Landlock and seccomp support (asked once per
// process).
func Probe() Support { return probe() }

// restrict applies r to the calling thread, which must have no_new_privs
// and must be the one that then calls execve.
func restrict(r Rules, abi int) error {
	attr := rulesetAttr{handledFS: handledFS(abi), handledNet: unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP}
	if abi >= 6 {
		attr.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return fmt.Errorf("landlock: create ruleset: %w", errno)
	}
	defer unix.Close(int(fd))
	add := func(paths []string, rights uint64) error {
		for _, p := range paths {
			if err := addPath(int(fd), p, rights&attr.handledFS); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(r.ReadOnly, roRights); err != nil {
		return err
	}
	if err := add(r.ReadWrite, rwRights); err != nil {
		return err
	}
	if err := add(r.Exec, exRights); err != nil {
		return err
	}
	for _, port := range r.ConnectTCP {
		na := netPortAttr{allowed: unix.LANDLOCK_ACCESS_NET_CONNECT_TCP, port: uint64(port)}
		if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, ruleNetPort, uintptr(unsafe.Pointer(&na)), 0, 0, 0); errno != 0 {
			return fmt.Errorf("landlock: allow TCP port %d: %w", port, errno)
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
		return fmt.Errorf("landlock: restrict self: %w", errno)
	}
	return nil
}

// addPath grants rights below path; a file gets only the rights that
// apply to files. A path that does not exist is skipped.
func addPath(rulesetFD int, path string, rights uint64) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("landlock: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("landlock: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		rights &= fileRights
	}
	if rights == 0 {
		return nil
	}
	pb := pathBeneathAttr{allowed: rights, parentFD: int32(fd)}
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rulesetFD), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&pb)), 0, 0, 0); errno != 0 {
		return fmt.Errorf("landlock: allow %s: %w", path, errno)
	}
	return nil
}
