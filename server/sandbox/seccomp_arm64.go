//go:build linux && arm64

package sandbox

import "golang.org/x/sys/unix"

var filterArch = &archInfo{
	audit:  unix.AUDIT_ARCH_AARCH64,
	socket: unix.SYS_SOCKET, socketpair: unix.SYS_SOCKETPAIR,
	ioUringSetup: unix.SYS_IO_URING_SETUP, ioUringEnter: unix.SYS_IO_URING_ENTER, ioUringRegister: unix.SYS_IO_URING_REGISTER,
}
