// Package guard holds the only doors from a tool handler to the world.
//
// # Network
//
// [Network] dials on behalf of plugins. A host name is first decided in the
// resolve phase (may it be looked up at all?), then every address it
// resolves to is decided again in the dial phase, from the dialer's
// ControlContext, on the IP and port actually being connected. Redirects are
// new dials and are decided again. Decisions are memoised per policy
// snapshot, so the cost of a repeated dial is a map lookup.
//
// Every decision is audited with kind "network", linked to the tool call
// that caused it by its decision id.
package guard
