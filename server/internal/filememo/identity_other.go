//go:build !linux

package filememo

import "os"

// identify knows no file off Linux: nothing is remembered, every Get
// reads.
func identify(string) (identity, bool) { return identity{}, false }

// openRegular opens nothing off Linux (Get reads by name).
func openRegular(string) (*os.File, identity, bool) { return nil, identity{}, false }

func identifyOpen(*os.File) (identity, bool) { return identity{}, false }

func fdPath(f *os.File) string { return f.Name() }
