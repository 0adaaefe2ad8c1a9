package engine

import "errors"

var (
	// ErrCompile means the policy's Rego did not compile.
	ErrCompile = errors.New("policy does not compile")
	// ErrEval means an evaluation failed: an error, a timeout or an
	// undefined decision. Callers treat it as a deny.
	ErrEval = errors.New("policy evaluation failed")
	// ErrUnknownPoint names a decision point the engine does not have.
	ErrUnknownPoint = errors.New("unknown decision point")
)
