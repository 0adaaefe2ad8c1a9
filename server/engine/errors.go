package engine

import "errors"

var (
	// ErrCompile means the policy's Rego did not compile.
	ErrCompile = errors.New("policy does not compile")
	// ErrEval means an evaluation failed: an error, a timeout or an
	// undefined decision. Callers treat it as a deny.
	ErrEval = errors.New("policy evaluation failed")
	// ErrNotReady means the policy was not compiled: the build of an
	// engine from Start failed, or the caller's context ended while it
	// waited for it. Callers treat it as a deny.
	ErrNotReady = errors.New("policy not compiled")
	// ErrUnknownPoint names a decision point the engine does not have.
	ErrUnknownPoint = errors.New("unknown decision point")
)
