package sandbox

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The server as the reaper of last resort. A launcher is the subreaper
// of its target's tree and kills what is left of it, but it runs as the
// same user, in the target's Landlock domain: the target can kill it
// (or stop it until the call's deadline has it killed), and what it
// started then is orphaned. Orphans go to the nearest subreaper above
// them: with BecomeSubreaper, this process. Each launcher ended by a
// signal is followed by a sweep that kills and reaps every child of this
// process the sandbox did not start itself, until none is left.
//
// A launcher stopped (SIGSTOP from its target, say) counts nothing and
// kills nothing while it is stopped: this process, its parent, hears of
// the stop (SIGCHLD) and kills it, and the sweep follows as above.

var reaper struct {
	on atomic.Bool
	// mu is held for reading while a process of the sandbox's own is
	// started and registered, for writing while orphans are swept: a
	// sweep never takes one being started for an orphan.
	mu   sync.RWMutex
	kids sync.Map // *exec.Cmd → *kid: started, not waited for yet
	// watch starts the watcher of stopped children, once.
	watch sync.Once
}

// kid is a process of the sandbox's own while it is not waited for.
type kid struct {
	mu sync.Mutex // held while pidfd is used or closed
	// pidfd is -1 without pidfds (before Linux 5.3: no Landlock either)
	// or once the process was waited for; without one it is not watched
	// for stops, since its pid could name another process once reaped.
	pidfd   int
	pid     int
	stopped bool // it was found stopped (or continued) and killed
}

// BecomeSubreaper makes this process the child subreaper (Linux
// PR_SET_CHILD_SUBREAPER) of whatever the sandbox starts, so that
// processes orphaned by a launcher that was killed are swept (see
// above). The server calls it at start.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	reaper.on.Store(true)
	return nil
}

// startChild starts cmd, a process of the sandbox's own.
func startChild(cmd *exec.Cmd) error {
	reaper.mu.RLock()
	defer reaper.mu.RUnlock()
	reaper.watch.Do(watchStops)
	if err := cmd.Start(); err != nil {
		return err
	}
	k := &kid{pid: cmd.Process.Pid, pidfd: -1}
	// Not reaped before Wait: the pidfd is of this very process.
	if fd, err := unix.PidfdOpen(k.pid, 0); err == nil {
		k.pidfd = fd
	}
	reaper.kids.Store(cmd, k)
	return nil
}

// waitChild waits for cmd, started by startChild. A launcher that a
// signal ended takes its process group with it, and what it left
// elsewhere is swept.
func waitChild(cmd *exec.Cmd) error {
	err := cmd.Wait()
	stopped := false
	if v, ok := reaper.kids.LoadAndDelete(cmd); ok {
		k := v.(*kid)
		k.mu.Lock()
		if k.pidfd >= 0 {
			unix.Close(k.pidfd)
			k.pidfd = -1
		}
		stopped = k.stopped
		k.mu.Unlock()
	}
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			syscall.Kill(-ps.Pid(), syscall.SIGKILL)
			sweepOrphans()
		}
	}
	if stopped {
		return ErrLauncherStopped
	}
	return err
}

// Values of a SIGCHLD siginfo's si_code for a stop and a continue.
const (
	cldStopped   = 5
	cldContinued = 6
)

// watchStops starts the watch that kills every process of the sandbox's
// own that is stopped, or was stopped and continued since it was last
// looked at: a launcher never stops by itself (its process group is its
// own, out of reach of a terminal's job control), and while it is
// stopped it neither counts nor kills its tree. Each SIGCHLD (sent to a
// parent when a child stops, continues or ends) looks at them all. It
// hears SIGCHLD before it returns, so before the first child starts.
func watchStops() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	go func() {
		for range sig {
			reaper.kids.Range(func(_, v any) bool {
				checkStopped(v.(*kid))
				return true
			})
		}
	}()
}

// checkStopped kills k if it is stopped or was continued; the stop's
// report is taken, its exit's is left to Wait.
func checkStopped(k *kid) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.pidfd < 0 {
		return
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, k.pidfd, &info, unix.WSTOPPED|unix.WCONTINUED|unix.WNOHANG, nil); err != nil {
		return
	}
	if info.Code != cldStopped && info.Code != cldContinued {
		return
	}
	k.stopped = true
	// Its group first, while the stopped launcher, which cannot end by
	// itself and so is not reaped, holds the group's id: what is left in
	// the group would keep the streams open until Wait's delay. (One
	// found continued is killed through its pidfd alone; Wait kills its
	// group.)
	if info.Code == cldStopped {
		unix.Kill(-k.pid, unix.SIGKILL)
	}
	unix.PidfdSendSignal(k.pidfd, unix.SIGKILL, nil, 0)
}

// sweepRounds bounds the rounds of a sweep: each kills the orphans found
// and reaps them, which orphans what they started in turn.
const sweepRounds = 100

// sweepOrphans kills and reaps the children of this process that the
// sandbox did not start, round after round until none is left.
func sweepOrphans() {
	if !reaper.on.Load() {
		return
	}
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	own := map[int]bool{}
	reaper.kids.Range(func(k, _ any) bool {
		if p := k.(*exec.Cmd).Process; p != nil {
			own[p.Pid] = true
		}
		return true
	})
	for range sweepRounds {
		var orphans []int
		for _, pid := range children() {
			if !own[pid] {
				orphans = append(orphans, pid)
			}
		}
		if len(orphans) == 0 {
			return
		}
		for _, pid := range orphans {
			unix.Kill(pid, unix.SIGKILL)
		}
		for _, pid := range orphans {
			reapPID(pid)
		}
	}
}

// reapPID waits, a second at most, for pid, a child killed, to be gone.
func reapPID(pid int) {
	deadline := time.Now().Add(time.Second)
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid || err != nil || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
