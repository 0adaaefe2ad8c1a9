//go:build linux

package sandbox

import (
	"strconv"
	"time"
)

// countInterval is how often the launcher counts the processes of the
// tree. A tree that forks as fast as it can outgrows the limit by what it
// forks in one interval before it is killed.
const countInterval = 20 * time.Millisecond

// watchCount counts the processes below the launcher every countInterval
// until stop is closed, and calls over (once) with what it counted when
// that is more than limit.
//
// RLIMIT_NPROC cannot do this: it counts every task (threads included) of
// the real user, in every pid namespace, so no value bounds one tree; and
// the kernel never applies it to uid 0, whatever capabilities the process
// holds. Counting works for root too, as the launcher is the subreaper of
// the whole tree: every descendant is below it.
func watchCount(limit int, stop <-chan struct{}, over func(seen int)) {
	t := time.NewTicker(countInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if n := countTree(limit); n > limit {
			over(n)
			return
		}
	}
}

// countTree counts the processes below this one, stopping once it has
// seen more than limit.
func countTree(limit int) int {
	queue := children()
	n := 0
	for len(queue) > 0 && n <= limit {
		pid := queue[0]
		queue = queue[1:]
		n++
		queue = append(queue, childrenOf(strconv.Itoa(pid), pid)...)
	}
	return n
}
