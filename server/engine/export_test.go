package engine

// WithoutMemo makes e evaluate every decision of its current snapshot.
func WithoutMemo(e *Engine) { e.snap.Load().memos = nil }
