package plugin

import "context"

// LeftOut is a program the server leaves out at start-up: an external
// plugin whose manifest does not load (its executable missing, its
// sha256 not the one pinned), names a tool already served, or that the
// launcher door refuses (a refused environment variable, no
// confinement).
type LeftOut struct {
	// Plugin is the plugin's name as its manifest gives it ("" when the
	// manifest could not be read).
	Plugin string
	// Dir is the plugin directory as the policy lists it.
	Dir string
	// Manifest is the manifest file.
	Manifest string
	// Reason says why, naming the manifest.
	Reason string
}

// LeftOutRecorder is implemented by a [Host] whose server keeps an audit
// log: a plugin that leaves a program out records it there, besides
// logging it, so the refusal is evidence and not only a line on stderr.
// A plugin finds it with a type assertion on the Host.
type LeftOutRecorder interface {
	// RecordLeftOut writes the audit record of l; ctx may be done (the
	// record is written on a detached context).
	RecordLeftOut(ctx context.Context, l LeftOut) error
}
