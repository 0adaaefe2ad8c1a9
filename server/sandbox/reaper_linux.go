package sandbox

import (
	"os/exec"
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

var reaper struct {
	on atomic.Bool
	// mu is held for reading while a process of the sandbox's own is
	// started and registered, for writing while orphans are swept: a
	// sweep never takes one being started for an orphan.
	mu   sync.RWMutex
	kids sync.Map // *exec.Cmd → struct{}: started, not waited for yet
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
	if err := cmd.Start(); err != nil {
		return err
	}
	reaper.kids.Store(cmd, struct{}{})
	return nil
}

// waitChild waits for cmd, started by startChild. A launcher that a
// signal ended takes its process group with it, and what it left
// elsewhere is swept.
func waitChild(cmd *exec.Cmd) error {
	err := cmd.Wait()
	reaper.kids.Delete(cmd)
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			syscall.Kill(-ps.Pid(), syscall.SIGKILL)
			sweepOrphans()
		}
	}
	return err
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
