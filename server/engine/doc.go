// Package engine evaluates the policy with Open Policy Agent, in process.
//
// # Snapshots
//
// [New] compiles the built-in Rego modules, the user's modules and the
// policy's data document into a snapshot and prepares one query per decision
// point. [Engine.Reload] builds a new snapshot and swaps it in atomically; if
// the new policy does not compile, the old snapshot stays.
//
// # Decisions
//
// [Engine.Decide] asks one decision point (tools, network, filesystem,
// commands). The hot path evaluates the boolean rule data.mcp.<point>.allow
// with topdown directly: a query compiled once per snapshot, one read
// transaction for the snapshot's life, the policy document served from an
// AST cache, and a deadline polled by the evaluator instead of a timer or
// goroutine per call. Only a deny evaluates data.mcp.<point>.decision (a
// prepared rego query) for its reasons.
// Undefined, an evaluation error or the decision deadline is a deny with
// [ErrEval]: the engine fails closed.
package engine
