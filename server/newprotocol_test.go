//go:build unix

package server

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// TestFastLaneGroupRefusalsOfNewProtocolAreSigned: when a group's records
// cannot be written, its 2026-07-28 calls are refused with results that
// carry the server's info, as the SDK answers every result of that
// protocol (annotateServerInfo), and as the same refusal outside a group
// is answered.
func TestFastLaneGroupRefusalsOfNewProtocolAreSigned(t *testing.T) {
	var grouped atomic.Int32
	t.Cleanup(func(h func(int)) func() { return func() { groupHook = h } }(groupHook))
	groupHook = func(n int) {
		if n > 1 {
			grouped.Add(1)
		}
	}
	p := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	alog := audit.New(sink, nil)
	defer alog.Close()
	s, err := New(Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}},
		Audit: alog, Timeout: 10 * time.Second, Plugins: []string{"pipeline-test", "fastlane-test"}})
	if err != nil {
		t.Fatal(err)
	}
	cOut, out := handshaken(t, s)
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
	if grouped.Load() == 0 {
		t.Skip("no calls ran in a group")
	}
	if unsigned > 0 {
		t.Errorf("%d of %d refusals of 2026-07-28 calls lack the server's info", unsigned, calls)
	}
}
