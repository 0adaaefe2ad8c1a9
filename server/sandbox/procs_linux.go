//go:build linux

package sandbox

import (
	"os"
	"strconv"
	"time"
)

// countInterval is how often the launcher counts the processes of the
// tree. A tree that forks as fast as it can outgrows the limit by what it
// forks in one interval before it is killed.
const countInterval = 20 * time.Millisecond

// watchCount counts the processes below the launcher every countInterval
// until stop or gone is closed, and calls over (once) when they are more
// than limit.
//
// RLIMIT_NPROC cannot do this: it counts every task (threads included) of
// the real user, in every pid namespace, so no value bounds one tree; and
// the kernel never applies it to uid 0, whatever capabilities the process
// holds. Counting works for root too, as the launcher is the subreaper of
// the whole tree: every descendant is below it.
func watchCount(limit int, stop, gone <-chan struct{}, over func()) {
	t := time.NewTicker(countInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-gone:
			return
		case <-t.C:
		}
		if countTree(limit) > limit {
			over()
			return
		}
	}
}

// countTree counts the processes below this one, stopping once it has
// seen more than limit.
func countTree(limit int) int {
	n := 0
	walkTree(func(int, int) bool {
		n++
		return n <= limit
	})
	return n
}

// walkTree visits the processes below this one, breadth first, each with
// the parent it was found under, until visit returns false.
func walkTree(visit func(pid, parent int) bool) {
	type node struct{ pid, parent int }
	var queue []node
	self := os.Getpid()
	for _, c := range children() {
		queue = append(queue, node{c, self})
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if !visit(n.pid, n.parent) {
			return
		}
		for _, c := range childrenOf(strconv.Itoa(n.pid), n.pid) {
			queue = append(queue, node{c, n.pid})
		}
	}
}
