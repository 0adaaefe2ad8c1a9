package plugin

import "sync/atomic"

// DefinitionState is a tool definition as the policy sees it
// (input.tool_definition of data.mcp.tools): whether it differs from the
// pinned one, and both hashes.
type DefinitionState struct {
	// Changed reports that the definition (name, description, schemas)
	// differs from the pinned one.
	Changed bool
	// Hash is the hash of the definition offered now; Pinned, the hash the
	// operator accepted.
	Hash, Pinned string
}

// definitionChanges counts DefinitionChanging calls.
var definitionChanges atomic.Uint64

// DefinitionChanging is called before a change of any tool's
// DefinitionState can be seen (an upstream's new listing, another pins
// file): what was computed from the states before, and is kept under
// them, may be stale even once they are back as they were.
func DefinitionChanging() { definitionChanges.Add(1) }

// DefinitionChanges is how many times DefinitionChanging was called: an
// answer computed while it stayed the same saw no definition change.
func DefinitionChanges() uint64 { return definitionChanges.Load() }
