package engine

import (
	"path/filepath"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The input documents of the decision points, one type each: the only
// place they are built, so what the policy sees cannot drift from what the
// METADATA block of each package (rego/mcp/<point>) documents. Each Value
// builds the document directly as an AST value, without a JSON round trip.

// Client is the MCP client a call comes from (self-asserted).
type Client struct {
	Name, Version string
}

// ToolInput is the input of data.mcp.tools.
type ToolInput struct {
	Tool       string
	Registered bool
	// Arguments are the call's arguments as an AST value; nil is {}.
	Arguments       ast.Value
	Client          Client
	ProtocolVersion string
	RequestID       string
	// Session is the session's earlier decisions (input.session); nil
	// is a session with none.
	Session *SessionHistory
	// Definition is the tool's definition against its pin; the zero value
	// (a tool of the binary) is unchanged.
	Definition ToolDefinition
}

// lastClient is the client term built last: a server mostly serves one
// client, whose term need not be built for every decision.
var lastClient atomic.Pointer[clientTerm]

type clientTerm struct {
	c Client
	t *ast.Term
}

// term is input.client. The term may be shared between decisions:
// evaluation only reads its input.
func (c Client) term() *ast.Term {
	if l := lastClient.Load(); l != nil && l.c == c {
		return l.t
	}
	t := ast.NewTerm(ast.NewObject(
		ast.Item(ast.InternedTerm("name"), ast.StringTerm(c.Name)),
		ast.Item(ast.InternedTerm("version"), ast.StringTerm(c.Version)),
	))
	lastClient.Store(&clientTerm{c: c, t: t})
	return t
}

// ToolDefinition is input.tool_definition: whether the tool's definition
// (name, description, schemas) differs from the hash the operator pinned.
// Hash and Pinned are empty for the binary's own tools.
type ToolDefinition struct {
	Changed      bool
	Hash, Pinned string
}

func (d ToolDefinition) term() *ast.Term {
	if d == (ToolDefinition{}) {
		return unchangedDefinition
	}
	return d.build()
}

// unchangedDefinition is the definition term of every tool of the binary,
// built once: input terms are only read, never changed, by evaluation.
var unchangedDefinition = ToolDefinition{}.build()

func (d ToolDefinition) build() *ast.Term {
	return ast.NewTerm(ast.NewObject(
		ast.Item(ast.InternedTerm("changed"), ast.InternedTerm(d.Changed)),
		ast.Item(ast.InternedTerm("hash"), ast.StringTerm(d.Hash)),
		ast.Item(ast.InternedTerm("pinned"), ast.StringTerm(d.Pinned)),
	))
}

// toolInputKeys are the members of the tools input document.
var toolInputKeys = []*ast.Term{
	ast.InternedTerm("tool_definition"), ast.InternedTerm("tool"), ast.InternedTerm("registered"),
	ast.InternedTerm("arguments"), ast.InternedTerm("client"), ast.InternedTerm("protocol_version"),
	ast.InternedTerm("request_id"), ast.InternedTerm("session"),
}

// Value builds the input document.
func (in ToolInput) Value() ast.Value {
	var items [8][2]*ast.Term
	for i, k := range toolInputKeys {
		items[i] = ast.Item(k, in.member(k))
	}
	return ast.NewObject(items[:]...)
}

// member is the value of the input document's member k; nil when it has
// none. Value is made of these, and so are the keys a memoised decision
// is kept under, so the two cannot differ.
func (in ToolInput) member(k *ast.Term) *ast.Term {
	key, _ := k.Value.(ast.String)
	switch key {
	case "tool_definition":
		return in.Definition.term()
	case "tool":
		return ast.StringTerm(in.Tool)
	case "registered":
		return ast.InternedTerm(in.Registered)
	case "arguments":
		if in.Arguments == nil {
			return ast.NewTerm(ast.NewObject())
		}
		return ast.NewTerm(in.Arguments)
	case "client":
		return in.Client.term()
	case "protocol_version":
		return ast.StringTerm(in.ProtocolVersion)
	case "request_id":
		return ast.StringTerm(in.RequestID)
	case "session":
		return ast.NewTerm(in.Session.Value())
	}
	return nil
}

// NetworkInput is the input of data.mcp.network: a name lookup (phase
// "resolve", IP empty) or a connection (phase "dial", Host empty for an IP
// literal).
type NetworkInput struct {
	Phase, Host, IP, EmbeddedIPv4 string
	Port                          int
	Network, Tool                 string
}

// Value builds the input document.
func (in NetworkInput) Value() ast.Value {
	return ast.NewObject(
		ast.Item(ast.InternedTerm("phase"), ast.StringTerm(in.Phase)),
		ast.Item(ast.InternedTerm("host"), ast.StringTerm(in.Host)),
		ast.Item(ast.InternedTerm("ip"), ast.StringTerm(in.IP)),
		ast.Item(ast.InternedTerm("embedded_ipv4"), ast.StringTerm(in.EmbeddedIPv4)),
		ast.Item(ast.InternedTerm("port"), ast.InternedTerm(in.Port)),
		ast.Item(ast.InternedTerm("network"), ast.StringTerm(in.Network)),
		ast.Item(ast.InternedTerm("tool"), ast.StringTerm(in.Tool)),
	)
}

// FileInput is the input of data.mcp.filesystem.
type FileInput struct {
	Path, Operation, Tool, RequestID string
}

// Value builds the input document.
func (in FileInput) Value() ast.Value {
	return ast.NewObject(
		ast.Item(ast.InternedTerm("path"), ast.StringTerm(in.Path)),
		ast.Item(ast.InternedTerm("operation"), ast.StringTerm(in.Operation)),
		ast.Item(ast.InternedTerm("tool"), ast.StringTerm(in.Tool)),
		ast.Item(ast.InternedTerm("request_id"), ast.StringTerm(in.RequestID)),
	)
}

// Program is an executable as data.mcp.commands sees it: the command
// itself, or one of the interpreters of its "#!" line.
type Program struct {
	Executable string // the absolute path it was found at
	Real       string // the file behind its symlinks
	Dev, Inode uint64 // of Real
	// Untrusted says why a tool could have written or swapped it; empty
	// when it is trusted.
	Untrusted []string
	// SameFileAs are the commands.allowed and commands.blocked entries
	// that are this very file.
	SameFileAs []string
	// Trampoline is /usr/bin/env in a "#!" line: decided by what it starts.
	Trampoline bool
	Role       string // "" for the command, "interpreter" otherwise
}

func (p Program) items() []*ast.Term {
	kv := []*ast.Term{
		ast.InternedTerm("executable"), ast.StringTerm(p.Executable),
		ast.InternedTerm("real"), ast.StringTerm(p.Real),
		ast.InternedTerm("name"), ast.StringTerm(filepath.Base(p.Executable)),
		ast.InternedTerm("resolved_name"), ast.StringTerm(filepath.Base(p.Real)),
		ast.InternedTerm("dev"), ast.UIntNumberTerm(p.Dev),
		ast.InternedTerm("inode"), ast.UIntNumberTerm(p.Inode),
		ast.InternedTerm("untrusted"), stringArray(p.Untrusted),
		ast.InternedTerm("same_file_as"), stringArray(p.SameFileAs),
		ast.InternedTerm("trampoline"), ast.BooleanTerm(p.Trampoline),
	}
	if p.Role != "" {
		kv = append(kv, ast.InternedTerm("role"), ast.StringTerm(p.Role))
	}
	return kv
}

// CommandInput is the input of data.mcp.commands: the program's fields
// at the top level, with the call's.
type CommandInput struct {
	Argv         []string
	Cwd          string
	Tool         string
	RequestID    string
	Program      Program
	Interpreters []Program
}

// Value builds the input document.
func (in CommandInput) Value() ast.Value {
	interps := make([]*ast.Term, len(in.Interpreters))
	for i, p := range in.Interpreters {
		interps[i] = object(p.items())
	}
	kv := append(in.Program.items(),
		ast.InternedTerm("argv"), stringArray(in.Argv),
		ast.InternedTerm("cwd"), ast.StringTerm(in.Cwd),
		ast.InternedTerm("tool"), ast.StringTerm(in.Tool),
		ast.InternedTerm("request_id"), ast.StringTerm(in.RequestID),
		ast.InternedTerm("interpreters"), ast.ArrayTerm(interps...),
	)
	return object(kv).Value
}

func stringArray(list []string) *ast.Term {
	terms := make([]*ast.Term, len(list))
	for i, s := range list {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

func object(kv []*ast.Term) *ast.Term {
	items := make([][2]*ast.Term, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		items = append(items, ast.Item(kv[i], kv[i+1]))
	}
	return ast.ObjectTerm(items...)
}
