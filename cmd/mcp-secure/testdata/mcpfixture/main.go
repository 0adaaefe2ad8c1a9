// Command mcpfixture is an MCP server on stdio for the end-to-end tests
// of plugin directories whose manifest is of type mcp.
//
// Tools: echo {text} returns text; read_file {path} reads a file (the
// sandbox decides whether it can) and answers its contents or the error;
// pid answers the process id; stall {ms} stops reading stdin for ms
// milliseconds once the next input has come (a busy server: what the
// client writes meanwhile stays in the pipe).
package main

import (
	"context"
	"io"
	"log"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type stallArgs struct {
	MS int `json:"ms"`
}

// stalling holds stdin's reads back while stalled (unix nanoseconds).
type stalling struct {
	io.ReadCloser
	until atomic.Int64
}

func (s *stalling) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if d := time.Until(time.Unix(0, s.until.Load())); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

type echoArgs struct {
	Text string `json:"text"`
}

type readArgs struct {
	Path string `json:"path"`
}

func text(s string, isError bool) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}, IsError: isError}
}

func main() {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpfixture", Version: "0.1.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns the text it is given."},
		func(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
			return text(a.Text, false), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "read_file", Description: "Reads a file."},
		func(_ context.Context, _ *mcp.CallToolRequest, a readArgs) (*mcp.CallToolResult, any, error) {
			data, err := os.ReadFile(a.Path)
			if err != nil {
				return text("read: "+err.Error(), true), nil, nil
			}
			return text(string(data), false), nil, nil
		})
	in := &stalling{ReadCloser: os.Stdin}
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "Answers the process id."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return text(strconv.Itoa(os.Getpid()), false), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "stall", Description: "Stops reading stdin for a while."},
		func(_ context.Context, _ *mcp.CallToolRequest, a stallArgs) (*mcp.CallToolResult, any, error) {
			in.until.Store(time.Now().Add(time.Duration(a.MS) * time.Millisecond).UnixNano())
			return text("stalled", false), nil, nil
		})
	if err := s.Run(context.Background(), &mcp.IOTransport{Reader: in, Writer: os.Stdout}); err != nil {
		log.Print(err)
	}
}
