//go:build linux && !amd64 && !arm64

package sandbox

// filterArch is nil where no socket filter is written: children cannot
// be confined there (Probe says why) and run only when unconfined.
var filterArch *archInfo
