package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/ratelimit"
)

// FuzzStdioServer feeds arbitrary bytes to a running server between a
// handshake and a ping: the server must not crash, must not hang, and must
// answer the ping that follows whatever came before. The ping's id is
// random, so the input cannot cancel it (a cancelled request rightly gets
// no answer).
func FuzzStdioServer(f *testing.F) {
	for _, seed := range []string{
		``,
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":`,
		`[{"jsonrpc":"2.0","id":2,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":42}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{"a":[[[[1]]]]}}}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"cursor":"zzz"}}`,
		`{"jsonrpc":"2.0","id":6,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":987654321}}`,
		"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"\xff\xfe\"}",
		`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":8,"result":{}}`,
		"\r\n\r\n{}\n[]\nnull\n\"x\"\n1e999\n",
	} {
		f.Add([]byte(seed))
	}
	srv, err := New(Options{
		Engine:  &fakeDecider{deny: map[string]string{}},
		Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 20}, nil),
		Audit:   &fakeAuditor{},
		Timeout: 2 * time.Second,
		Plugins: []string{"pipeline-test"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pingID := 1<<51 + rand.Int64N(1<<50)
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Run(ctx, inR, outW)
			outW.Close()
		}()
		answered := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(outR)
			sc.Buffer(make([]byte, 0, 1<<16), 4<<20)
			for sc.Scan() {
				var m struct {
					ID     any             `json:"id"`
					Result json.RawMessage `json:"result"`
				}
				if json.Unmarshal(sc.Bytes(), &m) == nil && m.ID == float64(pingID) && m.Result != nil {
					answered <- true
					io.Copy(io.Discard, outR)
					return
				}
			}
			answered <- false
		}()
		go func() {
			io.WriteString(inW, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}}`+"\n")
			io.WriteString(inW, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
			inW.Write(data)
			fmt.Fprintf(inW, "\n{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}\n", pingID)
		}()
		select {
		case ok := <-answered:
			if !ok {
				t.Fatalf("the server closed its output without answering the ping after %q", data)
			}
		case <-ctx.Done():
			t.Fatalf("no answer to the ping within 10s after %q", data)
		}
		inW.Close()
		cancel()
		<-done
	})
}
