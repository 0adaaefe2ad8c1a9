package audit

import "errors"

var (
	// ErrWrite means a record could not be written; the call it describes
	// must not proceed.
	ErrWrite = errors.New("audit write failed")
	// ErrClosed means the sink was used after Close.
	ErrClosed = errors.New("audit sink closed")
)
