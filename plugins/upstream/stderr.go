package upstream

import (
	"bufio"
	"io"
	"strings"
)

// maxStderrLine caps one line of an upstream's stderr in the server's
// log; the rest of the line is dropped.
const maxStderrLine = 4096

// logStderr writes the process's stderr to the server's log a line at a
// time, each capped (the log handler redacts), until it is closed. It
// reads everything, so a chatty server never blocks on a full pipe.
func (u *Upstream) logStderr(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxStderrLine)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 {
			if s := strings.TrimSpace(string(line)); s != "" {
				u.log.Info("upstream stderr", "line", s)
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
