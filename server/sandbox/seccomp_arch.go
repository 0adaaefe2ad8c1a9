//go:build linux

package sandbox

// archInfo is what the socket filter needs to know of an architecture:
// its audit value, whether it has the x32 ABI beside it, and the system
// call numbers the filter inspects.
type archInfo struct {
	audit                                       uint32
	x32                                         bool
	socket, socketpair                          uint32
	ioUringSetup, ioUringEnter, ioUringRegister uint32
}
