// Command mcpfixture is an MCP server on stdio for the end-to-end tests
// of plugin directories whose manifest is of type mcp.
//
// Tools: echo {text} returns text; read_file {path} reads a file (the
// sandbox decides whether it can) and answers its contents or the error.
package main

import (
	"context"
	"log"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

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
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Print(err)
	}
}
