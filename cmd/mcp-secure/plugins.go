package main

// The plugins in this build. Each registers itself from init; to build a
// different set, change this list.
import (
	_ "github.com/mcp-secure/mcp-secure/plugins/bugtracker"
	_ "github.com/mcp-secure/mcp-secure/plugins/discovery"
	_ "github.com/mcp-secure/mcp-secure/plugins/external"
	_ "github.com/mcp-secure/mcp-secure/plugins/websearch"
)
