//go:build linux

package sandbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// launcherArg is the hidden first argument that turns the binary into the
// launcher. It is not a flag: nothing else parses it.
const launcherArg = "__mcp-secure-sandbox-launcher__"

// maxSpec bounds the target description the launcher accepts.
const maxSpec = 8 << 20

// launcherProtocol names how the server and a launcher talk: the hidden
// arguments, the inherited descriptors, the target's encoding and what
// the report pipe carries. The server passes it to every launcher, and
// uses a separate launcher binary only when that binary answers the
// probe with the same one.
const launcherProtocol = "mcp-secure-launch/3"

// The launcher's last argument: the socket filter to install while it
// waits for its target, for targets whose rules allow UDP or not. A
// target of the other kind is refused.
const (
	filterTCPOnly = "filter=tcp"
	filterUDP     = "filter=tcp+udp"
)

func filterArg(udp bool) string {
	if udp {
		return filterUDP
	}
	return filterTCPOnly
}

// probeArg, after launcherArg, asks a launcher for its protocol: it
// prints probeAnswer and exits 0.
const probeArg = "probe"

var probeAnswer = launcherProtocol + "\n"

// RunIfLauncher turns this process into the sandbox launcher when it was
// started as one, and never returns then. Otherwise it returns at once.
// It runs from this package's init; calling it first thing in main as
// well documents the hook.
func RunIfLauncher() {
	if len(os.Args) < 2 || os.Args[1] != launcherArg {
		return
	}
	if len(os.Args) == 3 && os.Args[2] == probeArg {
		os.Stdout.WriteString(probeAnswer)
		os.Exit(0)
	}
	if len(os.Args) != 4 || os.Args[2] != launcherProtocol || os.Args[3] != filterTCPOnly && os.Args[3] != filterUDP {
		// A server of another version: refuse before touching anything.
		fmt.Fprintf(os.NewFile(fdReport, "report"), "launcher: it speaks %s, the server asked for %q", launcherProtocol, os.Args[2:])
		os.Exit(127)
	}
	// Started through a pinned descriptor, the process would be listed
	// as "64" (or as "exe", re-executed): name it for ps and top.
	name := []byte(LauncherName[:min(len(LauncherName), 15)] + "\x00")
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	os.Exit(launch(os.Args[3] == filterUDP))
}

// checkPinned fails unless p.Path names the file p describes, unchanged.
func checkPinned(p *PinnedFile) error {
	var st unix.Stat_t
	if err := unix.Stat(p.Path, &st); err != nil {
		return fmt.Errorf("pinned file %s: %v", p.Path, err)
	}
	if uint64(st.Dev) != p.Dev || st.Ino != p.Ino || st.Size != p.Size ||
		unix.TimespecToNsec(st.Mtim) != p.MtimeNs || unix.TimespecToNsec(st.Ctim) != p.CtimeNs {
		return fmt.Errorf("pinned file %s changed after its sha256 was checked (replaced or written); not started", p.Path)
	}
	return nil
}

func allowed(b bool) string {
	if b {
		return "allowed"
	}
	return "refused"
}

// checksPinned: the launcher checks a target's Pinned file.
const checksPinned = true

// childNice is the nice value of the target and its descendants.
const childNice = 10

// The launcher's inherited descriptors.
const (
	fdControl = 3 // the server's control pipe: the target, then EOF
	fdReport  = 4 // the launcher's report, read by the server
)

// The report pipe carries, from the launcher to the server, either why
// the target could not be started (text, never starting with
// reportStarted) followed by EOF, or reportStarted once the target runs
// and then, once the target has ended and nothing else of its tree is
// left, reportExited and the target's exit status in one byte (128+n
// when signal n killed it). The launcher then exits with that status.
const (
	reportStarted = 0x00
	reportExited  = 0x01
)

// The launcher takes over in this package's init, before the heavier
// packages of the binary initialise: a launcher starts in about a
// millisecond instead of paying for the whole program's start-up.
func init() { RunIfLauncher() }

// launch is the launcher: subreaper, watcher of the server, jailer and
// reaper of the tree. It returns the exit code of a failure to start the
// target; once the target runs it does not return, and the process exits
// with the target's status.
func launch(udp bool) int {
	// Landlock and no_new_privs bind this thread, which forks the target;
	// the target's parent-death signal follows it too.
	runtime.LockOSThread()
	unix.CloseOnExec(fdControl)
	unix.CloseOnExec(fdReport)
	report := os.NewFile(fdReport, "report")
	fail := func(format string, args ...any) int {
		fmt.Fprintf(report, format, args...)
		return 127
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("subreaper: %v", err)
	}
	// The thread that forks the target shares the target's Landlock
	// domain, so Landlock would let the target ptrace it and, through the
	// shared memory, run code in the launcher's unconfined threads. Not
	// dumpable, the launcher can be traced (or its memory and descriptors
	// reached: process_vm_writev, pidfd_getfd) only with CAP_SYS_PTRACE,
	// which the target does not hold.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail("dumpable: %v", err)
	}
	// What does not depend on the target is done before the target is
	// read: a launcher started ahead of its call (see Piped) does it
	// while it waits.
	var stopOnce sync.Once
	stop := make(chan struct{})
	stopNow := func() { stopOnce.Do(func() { close(stop) }) }
	// A signal before the target is read ends the launcher at once, as
	// the signal's default action did; after, it ends the tree. The lock
	// keeps the target from starting while a signal ends the launcher.
	var (
		started   sync.Mutex
		hasTarget bool
	)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		started.Lock()
		if !hasTarget {
			os.Exit(128 + int(sig.(syscall.Signal)))
		}
		started.Unlock()
		stopNow()
	}()
	// This thread is confined and forks the target, which inherits its
	// Landlock domain and no_new_privs; the rest of the launcher is not.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("no_new_privs: %v", err)
	}
	if err := dropCapabilities(); err != nil {
		return fail("capabilities: %v", err)
	}
	support := Probe()
	warmDecoder()
	// The socket filter, where the kernel has seccomp: installing it
	// (the kernel compiles the program) is work a launcher started ahead
	// does while it waits. It binds this thread and everything it
	// starts, and lets through what the rest of the set-up calls
	// (Landlock, rlimits, the priority). Its failure is reported once
	// the target is read, as every set-up failure is.
	var filterErr error
	filtered := support.SocketFilter
	if filtered {
		filterErr = installFilter(filterOptions{udp: udp})
	}

	// The launcher keeps none of the target's stdio but a copy of
	// stderr, to say why it killed the tree, closed before it reports
	// the tree gone: the server's pipes reach EOF when the last process
	// of the tree is gone. The target gets the streams from copies above
	// them (closed on exec); the launcher's own 0, 1 and 2 become
	// /dev/null before it has a target.
	var streams [3]int
	for fd := range streams {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fail("launcher: standard stream %d: %v", fd, err)
		}
		streams[fd] = dup
	}
	stderr := os.NewFile(uintptr(streams[2]), "stderr")
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			unix.Dup2(null, fd)
		}
		unix.Close(null)
	}

	// Non-blocking, the control pipe is read through the runtime's poller:
	// the goroutine that waits for its EOF holds no thread of its own.
	// (The server keeps no copy of this end.)
	unix.SetNonblock(fdControl, true)
	ctl := os.NewFile(fdControl, "control")
	spec, err := readSpec(ctl)
	if err != nil {
		return fail("launcher: %v", err)
	}
	started.Lock()
	hasTarget = true
	started.Unlock()
	// EOF on the control pipe: the server died or cancelled the call.
	go func() { io.Copy(io.Discard, ctl); stopNow() }()

	if spec.Rules.AllowUDP != udp {
		return fail("launcher: started for targets with UDP %s, given one with UDP %s", allowed(udp), allowed(spec.Rules.AllowUDP))
	}
	if filterErr != nil {
		return fail("%v", filterErr)
	}
	if err := setLimits(spec.Limits.withDefaults()); err != nil {
		return fail("rlimit: %v", err)
	}
	if !spec.Unconfined {
		if !support.Confines() {
			return fail("landlock: %s", support.Reason)
		}
		if err := restrict(spec.Rules, support.ABI); err != nil {
			return fail("%v", err)
		}
	}
	// Without seccomp, a confined target is refused here (an unconfined
	// one runs without the filter).
	if !filtered && !spec.Unconfined {
		if err := installFilter(filterOptions{udp: spec.Rules.AllowUDP}); err != nil {
			return fail("%v", err)
		}
	}
	// The tree runs at a lower priority than the launcher's other
	// threads, which count, kill and reap it: a tree that keeps every CPU
	// busy (a fork bomb) must not starve them. Nice values are per
	// thread, and the target inherits this one's.
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, childNice); err != nil {
		return fail("nice: %v", err)
	}
	// The file the server checked is still the one at its path: a
	// replacement after its check is refused here, as late as can be.
	if p := spec.Pinned; p != nil {
		if err := checkPinned(p); err != nil {
			return fail("%v", err)
		}
	}
	// syscall.ForkExec, not os.StartProcess: os checks once per process
	// that pidfds work by starting a throwaway child, a whole process
	// creation the launcher, which starts one target, would pay each time.
	target, err := syscall.ForkExec(spec.Path, spec.Args, &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []uintptr{uintptr(streams[0]), uintptr(streams[1]), uintptr(streams[2])},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return fail("%v", &os.PathError{Op: "fork/exec", Path: spec.Path, Err: err})
	}
	unix.Close(streams[0])
	unix.Close(streams[1])
	// The target runs: the server learns it (see Cmd.Start).
	if _, err := report.Write([]byte{reportStarted}); err != nil {
		stopNow() // the server is gone
	}

	// gone is closed once nothing of the tree is left: from then on
	// nothing walks /proc below the launcher (the kernel's release of a
	// process whose /proc entries are being read can take long).
	gone := make(chan struct{})
	go func() {
		select {
		case <-stop:
			killTree(gone)
		case <-gone:
		}
	}()
	maxProcs := int(min(spec.Limits.withDefaults().Processes, 1<<20))
	go watchCount(maxProcs, stop, gone, func() {
		fmt.Fprintf(stderr, "mcp-secure sandbox: the command's process tree grew past %d processes and was killed\n", maxProcs)
		stopNow()
	})
	// The tree is reaped, and the launcher exits, from another thread
	// than this one, which runs at the tree's lower priority: on a busy
	// machine it would be slow to notice that the target has ended. This
	// thread, the target's parent, lives on until the process exits (the
	// target's parent-death signal follows it).
	go func() { os.Exit(reap(target, stopNow, gone, stderr, report)) }()
	select {}
}

// Values of a SIGCHLD siginfo's si_code.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// exitedChild is the process, and its exit status (128+n when signal n
// killed it), that waitid filled info for.
func exitedChild(info *unix.Siginfo) (pid, code int) {
	// si_pid, si_uid and si_status begin the union after si_signo,
	// si_errno and si_code, aligned for the pointers it holds.
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	base := unsafe.Pointer(info)
	pid = int(*(*int32)(unsafe.Add(base, off)))
	status := int(*(*int32)(unsafe.Add(base, off+8)))
	if info.Code == cldKilled || info.Code == cldDumped {
		return pid, 128 + status
	}
	return pid, status
}

// reap waits for the target to end, then for the rest of its tree to be
// gone (stop kills it), and reports the target's exit status to the
// server; it returns that status.
//
// Whatever exits below the launcher is reaped at once, the target too:
// the tree is gone when the launcher has no child left (waitid answers
// ECHILD), one system call where walking /proc for the launcher's
// children took one read per thread of the launcher, and the kernel
// releases a process cheaply when nothing looked up its /proc entries.
func reap(target int, stop func(), gone chan<- struct{}, stderr, report *os.File) int {
	code := -1
	for code < 0 {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// ECHILD: the target is gone without a status we saw.
			code = 128 + int(syscall.SIGKILL)
			break
		}
		// Another pid is a process of the tree whose parent died
		// before it: it came to us, the subreaper, and is reaped now.
		if pid, status := exitedChild(&info); pid == target {
			code = status
		}
	}
	// Whatever the target left behind came to us, the subreaper: orphans
	// are reparented to the launcher, and a process below a live one is
	// below one of the launcher's children. So once the launcher has no
	// child, nothing of the tree is left; while it has one that lives,
	// the tree is killed and reaped to the last.
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break // ECHILD: no child left
		}
		if pid, _ := exitedChild(&info); pid != 0 {
			continue // one more reaped
		}
		// Children left, none of them exited: kill the tree and reap it.
		stop()
		for {
			err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED, nil)
			if err != nil && err != unix.EINTR {
				break
			}
		}
		break
	}
	close(gone)
	stderr.Close()
	report.Write([]byte{reportExited, byte(code)})
	return code
}

// killTree kills every process below this one, the whole tree each
// round (a fork bomb's newest generations are the ones that multiply),
// until gone is closed; those that die hand their children to us, the
// subreaper, for the next round. The reaper (see reap) closes gone once
// all are gone.
func killTree(gone <-chan struct{}) {
	for i := 0; ; i++ {
		walkTree(func(pid, parent int) bool {
			killChild(pid, parent)
			return true
		})
		select {
		case <-gone:
			return
		case <-time.After(time.Duration(min(i+1, 20)) * time.Millisecond):
		}
	}
}

// killChild sends SIGKILL to pid if it is still the child of parent it
// was found as: a pid that was reaped and reused since is left alone.
// The pidfd pins the process between the check and the signal.
func killChild(pid, parent int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if err == unix.ENOSYS && parent == os.Getpid() { // before Linux 5.3; only we reap our children
			unix.Kill(pid, unix.SIGKILL)
		}
		return
	}
	defer unix.Close(fd)
	if parentOf(pid) == parent {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// parentOf is pid's parent, from /proc/pid/stat; 0 when it is gone.
func parentOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return parseParent(data)
}

func parseParent(stat []byte) int {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// children lists the processes whose parent is this one.
func children() []int { return childrenOf("self", os.Getpid()) }

// childrenOf lists the children of process pid (named in /proc by dir:
// "self" or the pid), from the children files of its threads, or, without
// CONFIG_PROC_CHILDREN, by scanning /proc for processes whose parent it is.
//
// A thread's children file is read through the thread's own directory
// (/proc/TID/task/TID), not below the process's (/proc/PID/task/TID):
// the kernel takes milliseconds to release a process whose thread
// entries below its own directory were looked up, and the launcher
// counts the tree every few milliseconds. A thread id that ended and was
// taken by another process since the listing could name that process's
// children, so each child must name pid as its parent.
func childrenOf(dir string, pid int) []int {
	var out []int
	tasks, err := os.ReadDir("/proc/" + dir + "/task")
	if err == nil {
		found := false
		for _, t := range tasks {
			data, err := os.ReadFile("/proc/" + t.Name() + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			found = true
			for f := range strings.FieldsSeq(string(data)) {
				if child, err := strconv.Atoi(f); err == nil && parentOf(child) == pid {
					out = append(out, child)
				}
			}
		}
		if found {
			return out
		}
	}
	for child, parent := range parents() {
		if parent == pid {
			out = append(out, child)
		}
	}
	return out
}

// parents maps every visible process to its parent, from /proc/*/stat.
func parents() map[int]int {
	out := map[int]int{}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if ppid := parseParent(data); ppid > 0 {
			out[pid] = ppid
		}
	}
	return out
}

// dropCapabilities empties this thread's capability sets and bounding
// set, so the target has none even when the server runs as root (no raw
// sockets, no mknod, no ptrace of others, no mounts): with no_new_privs
// and an empty bounding set, execve grants root nothing back.
func dropCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("ambient: %w", err)
	}
	for c := 0; c < 64; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL { // past the last capability the kernel knows
			break
		}
		if err != nil && err != unix.EPERM { // EPERM: not privileged, nothing to drop
			return fmt.Errorf("bounding set: %w", err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

func setLimits(l Limits) error {
	set := func(name string, res int, soft, hard uint64) error {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(res, &cur); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		hard = min(hard, cur.Max)
		soft = min(soft, hard)
		// syscall's Setrlimit, not unix's: os/exec would otherwise hand
		// the child the soft open-files limit the process started with.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	cpu := uint64((l.CPU + time.Second - 1) / time.Second)
	for _, r := range []struct {
		name       string
		res        int
		soft, hard uint64
	}{
		{"cpu", unix.RLIMIT_CPU, cpu, cpu + 5}, // SIGXCPU, then SIGKILL
		{"data", unix.RLIMIT_DATA, l.Data, l.Data},
		{"fsize", unix.RLIMIT_FSIZE, l.FileSize, l.FileSize},
		{"nofile", unix.RLIMIT_NOFILE, l.OpenFiles, l.OpenFiles},
		{"core", unix.RLIMIT_CORE, 0, 0},
	} {
		if err := set(r.name, r.res, r.soft, r.hard); err != nil {
			return err
		}
	}
	return nil
}

// warmDecoder decodes a target description once, so that the decoder's
// work per type (reflection over Target's fields) is done before the
// target arrives.
func warmDecoder() {
	var t Target
	json.Unmarshal([]byte(`{"Path":"/","Args":["a"],"Env":["a=b"],"Dir":"/","ReadWrite":["/"],"ReadOnly":["/"],"Exec":["/"],"ConnectTCP":[1],"AllowUDP":false,"Limits":{"CPU":1,"Data":1,"FileSize":1,"OpenFiles":1,"Processes":1},"Unconfined":false}`), &t)
}

// readSpec reads the length-prefixed target description.
func readSpec(r io.Reader) (*Target, error) {
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return nil, fmt.Errorf("reading the target: %w", err)
	}
	if n > maxSpec {
		return nil, fmt.Errorf("target description of %d bytes is too large", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("reading the target: %w", err)
	}
	var t Target
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("reading the target: %w", err)
	}
	if !filepath.IsAbs(t.Path) || len(t.Args) == 0 {
		return nil, fmt.Errorf("target %q: want an absolute path and argv", t.Path)
	}
	return &t, nil
}

// UnconfinedLeft is what still holds a child started unconfined.
const UnconfinedLeft = "seccomp socket filter (where the kernel has seccomp), no_new_privs, no capabilities, rlimits, process limit, subreaper only"
