// Package engine evaluates the policy with Open Policy Agent, in process.
//
// # Snapshots
//
// [New] compiles the built-in Rego modules, the user's modules and the
// policy's data document into a snapshot and prepares one query per decision
// point. [Engine.Reload] builds a new snapshot and swaps it in atomically; if
// the new policy does not compile, the old snapshot stays; [Engine.Adopt]
// swaps in the snapshot of an engine already built (a reload that checked
// the whole policy first).
//
// Without user modules, a snapshot compiles package by package (each
// decision package of the built-in modules reads only its own rules and
// the policy document): [Start] returns the tools point and the audit
// masks once theirs are compiled, and a decision at another point waits
// for its package. [Engine.Wait] reports the build once every package is
// compiled.
//
// A call pins the snapshot in force when it starts ([Engine.Pin]): every
// decision under the pinned context (the tool decision, each guarded
// access while its handler runs, its audit masks) comes from that
// snapshot, even when a reload swaps in another meanwhile. Memos keyed on
// a generation use [Engine.GenerationFor].
//
// # Session history
//
// [SessionLog] keeps, per session and bounded, the session's earlier
// decisions; [ToolInput.Session] offers them to the tools decision point
// as input.session (history, counts, dropped), so a rule can refuse a call
// for what came before it in the same session.
//
// # User modules
//
// [Config.UserModules] are the policy's own Rego modules, compiled with the
// built-in ones ([Config.Modules]). They may only tighten a decision: in a
// decision package (mcp.tools, mcp.network, mcp.filesystem, mcp.commands,
// mcp.audit) a user module adds to deny with `deny contains reason if
// { ... }` (and to mask in mcp.audit) and defines helpers under names the
// built-in modules do not use. A rule named allow, permitted, decision or
// reasons, any other built-in rule, a default for one, a function with a
// built-in name, a rule that shadows a built-in function (glob.match,
// count) and a rule head that reaches into a decision package or the
// policy data from another package fail the build with [ErrUserModule],
// naming the file, line and rule. `with` in a user rule changes only that
// rule's own expression; the decision's allow is evaluated on the real
// input and data.
//
// # Decisions
//
// [Engine.Decide] asks one decision point (tools, network, filesystem,
// commands). The hot path evaluates the boolean rule data.mcp.<point>.allow
// with topdown directly: a query compiled once per snapshot, one read
// transaction for the snapshot's life, the policy document served from an
// AST cache, and a deadline polled by the evaluator instead of a timer or
// goroutine per call. Only a deny evaluates data.mcp.<point>.decision, the
// same way, for its reasons. The audit mask rules are evaluated the same
// way too, and skipped for records that provably match none of them when
// the built-in rules are the only ones.
// Undefined, an evaluation error or the decision deadline is a deny with
// [ErrEval]: the engine fails closed.
package engine
