package server

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestRoomForFollowsThePipe: the reader may post a large answer itself
// only while the pipe to the client has room for it; a client that
// stops reading fills the pipe, and the answer must go elsewhere.
func TestRoomForFollowsThePipe(t *testing.T) {
	r, wf, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wf.Close()
	w := newLineWriter(wf)
	line := bytes.Repeat([]byte("x"), 8<<10)
	if !w.roomFor(len(line)) {
		t.Fatal("an empty pipe has no room for 8 KiB")
	}
	written := 0
	for w.roomFor(len(line)) && written < 1<<20 {
		if err := w.writeLine(line); err != nil {
			t.Fatal(err)
		}
		written += len(line) + 1
	}
	if written >= 1<<20 {
		t.Fatal("room reported past 1 MiB unread")
	}
	if _, err := io.ReadFull(r, make([]byte, written)); err != nil {
		t.Fatal(err)
	}
	if !w.roomFor(len(line)) {
		t.Error("no room once the client read everything")
	}
	var buf bytes.Buffer
	if newLineWriter(&buf).roomFor(1) {
		t.Error("room reported for an output that cannot tell")
	}
}
