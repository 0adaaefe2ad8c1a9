//go:build unix

package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// TestFastLaneGroupsRecordBeforeAnswers: calls of a Local tool in
// flight together, run in groups whose records are written together,
// are each answered only once their records are in the audit file; once
// the file is moved away, every call is refused, each one in a group
// included.
func TestFastLaneGroupsRecordBeforeAnswers(t *testing.T) {
	p, grouped, cOut, out := groupServer(t)

	// recorded is what the log holds for each request id, by kind.
	recorded := func(path string) map[string][]string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for line := range bytes.Lines(data) {
			if !bytes.HasSuffix(line, []byte("\n")) {
				break // a batch being written
			}
			var r audit.Record
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			m[r.RequestID] = append(m[r.RequestID], r.Kind)
		}
		return m
	}
	send := func(from, to int) {
		var b strings.Builder
		for id := from; id < to; id++ {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"local_echo","arguments":{"n":%d}}}`+"\n", id, id)
		}
		if _, err := io.WriteString(cOut, b.String()); err != nil {
			t.Fatal(err)
		}
	}
	read := func() answerLine {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var a answerLine
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		return a
	}

	const calls = 150
	send(1, calls+1)
	for range calls {
		a := read()
		if !strings.Contains(string(a.Result), "local") {
			t.Fatalf("answer to %d: %s", a.ID, a.Result)
		}
		want := []string{audit.KindToolCall, audit.KindToolResult}
		if got := recorded(p)[strconv.Itoa(a.ID)]; !slices.Equal(got, want) {
			t.Fatalf("answer to %d read while its records are %v, want %v", a.ID, got, want)
		}
	}

	if grouped.Load() == 0 {
		t.Error("no calls ran in a group")
	}
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	send(calls+1, 2*calls+1)
	for range calls {
		a := read()
		if !strings.Contains(string(a.Result), "its audit record could not be written") || !strings.Contains(string(a.Result), `"isError":true`) {
			t.Fatalf("answer to %d with the log moved away: %s", a.ID, a.Result)
		}
	}
	for id, kinds := range recorded(p + ".moved") {
		if n, _ := strconv.Atoi(id); n > calls {
			t.Errorf("records of refused call %s in the log: %v", id, kinds)
		}
	}
}

// groupServer runs a server over pipes, past its handshake, with an
// audit log at path that its calls write, and counts the groups of more
// than one call its workers finish.
func groupServer(t *testing.T) (path string, grouped *atomic.Int32, cOut io.WriteCloser, out *bufio.Reader) {
	t.Helper()
	grouped = new(atomic.Int32)
	// Set before the server starts, put back once it has stopped.
	t.Cleanup(func(h func(int)) func() { return func() { groupHook = h } }(groupHook))
	groupHook = func(n int) {
		if n > 1 {
			grouped.Add(1)
		}
	}
	path = filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	alog := audit.New(sink, nil)
	t.Cleanup(func() { alog.Close() })
	s, err := New(Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}},
		Audit: alog, Timeout: 10 * time.Second, Plugins: []string{"pipeline-test", "fastlane-test"}})
	if err != nil {
		t.Fatal(err)
	}
	cOut, out = handshaken(t, s)
	return path, grouped, cOut, out
}

// TestFastLaneGroupRefusalsOfNewProtocolAreSigned: when a group's records
// cannot be written, its 2026-07-28 calls are refused with results that
// carry the server's info, as the SDK answers every result of that
// protocol (annotateServerInfo), and as the same refusal outside a group
// is answered.
func TestFastLaneGroupRefusalsOfNewProtocolAreSigned(t *testing.T) {
	p, grouped, cOut, out := groupServer(t)
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	const calls = 150
	var b strings.Builder
	for id := 1; id <= calls; id++ {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"local_echo","arguments":{"n":%d},`+newProtocolMeta+`}}}`+"\n", id, id)
	}
	if _, err := io.WriteString(cOut, b.String()); err != nil {
		t.Fatal(err)
	}
	unsigned := 0
	for range calls {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(line, "its audit record could not be written") {
			t.Fatalf("answer with the log moved away: %s", line)
		}
		if !strings.Contains(line, `"io.modelcontextprotocol/serverInfo"`) {
			unsigned++
		}
	}
	// The same call on the SDK's path (a member the fast lane leaves to
	// it): refused, and signed.
	fmt.Fprintf(cOut, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"local_echo","arguments":{},`+newProtocolMeta+`},"requestState":""}}`+"\n", calls+1)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "its audit record could not be written") || !strings.Contains(line, `"io.modelcontextprotocol/serverInfo"`) {
		t.Fatalf("the SDK's answer: %s", line)
	}
	if unsigned > 0 {
		t.Errorf("%d of %d refusals of 2026-07-28 calls lack the server's info", unsigned, calls)
	}
	if grouped.Load() == 0 {
		t.Error("no calls ran in a group")
	}
}
