// Command canned is the floor for mcp-bench's ratios: an MCP stdio server
// that answers with canned bytes and does no other work.
//
// It answers initialize, server/discover, ping, tools/list and tools/call.
// tools/call answers by tool name: "fail" with an isError result, "bad"
// with JSON-RPC error -32602, "hang" never; any other name succeeds. Other
// methods get -32601. With -count FILE it writes the number of requests it
// read (notifications excluded) to FILE when its input ends.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
)

const (
	initResult = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":false}},"serverInfo":{"name":"canned","version":"1"}}`
	discResult = `{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":false}},"serverInfo":{"name":"canned","version":"1"}}`
	toolsList  = `{"tools":[{"name":"list_categories","description":"List the tool categories.","inputSchema":{"type":"object","properties":{}}},{"name":"echo","description":"Echo text.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}}]}`
	callOK     = `{"content":[{"type":"text","text":"{\"categories\":[\"files\",\"network\",\"exec\"]}"}],"structuredContent":{"categories":["files","network","exec"]}}`
	callFail   = `{"content":[{"type":"text","text":"denied"}],"isError":true}`
)

type request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name string `json:"name"`
	} `json:"params"`
}

func main() {
	countFile := flag.String("count", "", "write the number of requests read to `file` at EOF")
	flag.Parse()
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	requests := 0
	for {
		line, err := in.ReadSlice('\n')
		if len(line) > 0 {
			var req request
			if json.Unmarshal(line, &req) == nil && len(req.ID) > 0 {
				requests++
				answer(out, &req)
				// Flush when no more input is already buffered, so a
				// pipelined burst goes out in few writes.
				if in.Buffered() == 0 {
					_ = out.Flush()
				}
			}
		}
		if err == bufio.ErrBufferFull {
			fmt.Fprintln(os.Stderr, "canned: line too long")
			os.Exit(1)
		}
		if err != nil {
			break
		}
	}
	_ = out.Flush()
	if *countFile != "" {
		if err := os.WriteFile(*countFile, []byte(strconv.Itoa(requests)+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "canned:", err)
			os.Exit(1)
		}
	}
}

func answer(out *bufio.Writer, req *request) {
	switch req.Method {
	case "initialize":
		result(out, req.ID, initResult)
	case "server/discover":
		result(out, req.ID, discResult)
	case "ping":
		result(out, req.ID, `{}`)
	case "tools/list":
		result(out, req.ID, toolsList)
	case "tools/call":
		switch req.Params.Name {
		case "hang":
		case "fail":
			result(out, req.ID, callFail)
		case "bad":
			errorAnswer(out, req.ID, -32602, "invalid params")
		default:
			result(out, req.ID, callOK)
		}
	default:
		errorAnswer(out, req.ID, -32601, "method not found")
	}
}

func result(out *bufio.Writer, id json.RawMessage, body string) {
	out.WriteString(`{"jsonrpc":"2.0","id":`)
	out.Write(id)
	out.WriteString(`,"result":`)
	out.WriteString(body)
	out.WriteString("}\n")
}

func errorAnswer(out *bufio.Writer, id json.RawMessage, code int, msg string) {
	out.WriteString(`{"jsonrpc":"2.0","id":`)
	out.Write(id)
	out.WriteString(`,"error":{"code":`)
	out.WriteString(strconv.Itoa(code))
	out.WriteString(`,"message":`)
	m, _ := json.Marshal(msg)
	out.Write(m)
	out.WriteString("}}\n")
}
