package upstream

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
)

// maxStderrLine caps one line of an upstream's stderr in the server's
// log; the rest of the line is dropped.
const maxStderrLine = 4096

// maxStderrLog bounds what one process of an upstream may write to the
// server's log through its stderr, as for a persistent plugin; past it,
// the rest is read and dropped.
const maxStderrLog = 1 << 20

// quietAfter is how many starts in a row may fail with their stderr in
// the server's log at info level: a server that keeps failing the same
// way is retried every 30 s for as long as mcp-secure runs, and its
// stderr, told that often, would bury the rest of the log. Past it, the
// stderr of its starts is logged at debug level until one succeeds.
const quietAfter = 3

// logStderr writes the process's stderr to the server's log a line at a
// time, each capped (the log handler redacts), until it is closed or
// maxStderrLog is spent. It reads everything, so a chatty server never
// blocks on a full pipe.
func (u *Upstream) logStderr(r io.ReadCloser) {
	defer r.Close()
	u.mu.Lock()
	failed := u.failedStarts
	u.mu.Unlock()
	level := slog.LevelInfo
	if failed >= quietAfter {
		level = slog.LevelDebug
	}
	told := false
	br := bufio.NewReaderSize(r, maxStderrLine)
	budget := maxStderrLog
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 && budget > 0 {
			if s := strings.TrimSpace(string(line)); s != "" {
				budget -= len(s)
				if level == slog.LevelDebug && !told && failed == quietAfter {
					told = true // once a streak
					u.log.Info("upstream stderr: logged at debug level from now on, until the server starts", "failed_starts_in_a_row", failed)
				}
				u.log.Log(context.Background(), level, "upstream stderr", "line", s)
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
