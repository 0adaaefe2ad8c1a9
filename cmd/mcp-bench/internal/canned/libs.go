//go:build libfloor

package main

// Built with -tags libfloor, canned links the libraries mcp-secure is
// built on and answers as before: its start is the floor of any server
// made of them (their packages initialise before main), the yardstick
// for mcp-secure's own start beside the bare canned floor.
import (
	_ "github.com/PuerkitoBio/goquery"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "github.com/open-policy-agent/opa/v1/rego"
	_ "go.opentelemetry.io/otel/sdk/metric"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite"
)
