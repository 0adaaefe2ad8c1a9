package bundle

import "errors"

// Errors of this package; others wrap them with %w.
var (
	// ErrConfig is a bad bundle configuration.
	ErrConfig = errors.New("bundle configuration")
	// ErrLayout is a bundle whose content does not fit the layout.
	ErrLayout = errors.New("bundle layout")
	// ErrNoBundle is returned by Open when no bundle could be had: the
	// service failed and nothing was persisted.
	ErrNoBundle = errors.New("no bundle available")
)
