package plugin

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
