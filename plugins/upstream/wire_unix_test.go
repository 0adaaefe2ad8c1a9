//go:build unix

package upstream

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWireWriteToABlockingFileEndsWithItsContext: a pipe in blocking mode
// takes no deadlines, and closing it does not end a write under way: a
// call whose request cannot be written returns at its deadline all the
// same (plugin.Tool.Bounded).
func TestWireWriteToABlockingFileEndsWithItsContext(t *testing.T) {
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	inR, inW := os.NewFile(uintptr(fds[0]), "in-r"), os.NewFile(uintptr(fds[1]), "in-w")
	defer inR.Close() // ends the write left behind
	outR, outW := io.Pipe()
	defer outW.Close()
	w := newWire(inW, outR, slog.New(slog.DiscardHandler))
	defer w.close()
	if w.deadline != nil && w.deadline.SetWriteDeadline(time.Time{}) == nil {
		t.Fatal("a pipe in blocking mode takes deadlines")
	}
	big := json.RawMessage(`{"text":"` + strings.Repeat("z", 1<<20) + `"}`)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	within(t, func() error { _, err := w.call(ctx, "echo", big, ""); return err }, context.DeadlineExceeded)
}
