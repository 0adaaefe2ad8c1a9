package upstream

import (
	"bufio"
	"io"
	"strings"
)

// maxStderrLine caps one line of an upstream's stderr in the server's
// log; the rest of the line is dropped.
const maxStderrLine = 4096

// maxStderrLog bounds what one process of an upstream may write to the
// server's log through its stderr, as for a persistent plugin; past it,
// the rest is read and dropped.
const maxStderrLog = 1 << 20

// logStderr writes the process's stderr to the server's log a line at a
// time, each capped (the log handler redacts), until it is closed or
// maxStderrLog is spent. It reads everything, so a chatty server never
// blocks on a full pipe.
func (u *Upstream) logStderr(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxStderrLine)
	budget := maxStderrLog
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 && budget > 0 {
			if s := strings.TrimSpace(string(line)); s != "" {
				budget -= len(s)
				u.log.Info("upstream stderr", "line", s)
				if budget <= 0 {
					u.log.Warn("upstream stderr: over 1 MiB from this process; the rest is dropped")
				}
			}
		}
		for isPrefix && err == nil { // the rest of an over-long line
			_, isPrefix, err = br.ReadLine()
		}
		if err != nil {
			return
		}
	}
}
