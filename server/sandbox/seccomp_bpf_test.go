//go:build linux

package sandbox

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF evaluates a seccomp program on one system call, as the kernel
// would (only the instructions the socket filter uses).
func runBPF(t *testing.T, prog []unix.SockFilter, arch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[offNr:], nr)
	binary.LittleEndian.PutUint32(data[offArch:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[offArg0+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			taken := acc == in.K
			if in.Code&0xf0 == unix.BPF_JGE {
				taken = acc >= in.K
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("instruction %d: unknown code %#x", pc, in.Code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func TestSocketFilterProgram(t *testing.T) {
	amd64 := &archInfo{audit: unix.AUDIT_ARCH_X86_64, x32: true, socket: 41, socketpair: 53, ioUringSetup: 425, ioUringEnter: 426, ioUringRegister: 427}
	arm64 := &archInfo{audit: unix.AUDIT_ARCH_AARCH64, socket: 198, socketpair: 199, ioUringSetup: 425, ioUringEnter: 426, ioUringRegister: 427}
	const (
		allow  = unix.SECCOMP_RET_ALLOW
		kill   = unix.SECCOMP_RET_KILL_PROCESS
		eacces = unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)
		eafno  = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	flags := uint64(unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC)
	for _, arch := range []struct {
		name string
		a    *archInfo
	}{{"amd64", amd64}, {"arm64", arm64}} {
		a := arch.a
		for _, tc := range []struct {
			name  string
			udp   bool
			audit uint32
			nr    uint32
			args  []uint64
			want  uint32
		}{
			{name: "allow/getpid", nr: 39, want: allow},
			{name: "kill/other-arch", audit: unix.AUDIT_ARCH_I386, nr: 39, want: kill},
			{name: "kill/arm-compat", audit: unix.AUDIT_ARCH_ARM, nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_STREAM}, want: kill},
			{name: "allow/tcp", nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_STREAM, 0}, want: allow},
			{name: "allow/tcp6-flags-proto", nr: a.socket, args: []uint64{unix.AF_INET6, unix.SOCK_STREAM | flags, unix.IPPROTO_TCP}, want: allow},
			{name: "allow/tcp-high-bits-ignored", nr: a.socket, args: []uint64{1<<32 | unix.AF_INET, unix.SOCK_STREAM, 0}, want: allow},
			{name: "deny/tcp-unknown-flag", nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_STREAM | 0x100, 0}, want: eacces},
			{name: "deny/mptcp", nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_STREAM, 262}, want: eacces},
			{name: "deny/sctp", nr: a.socket, args: []uint64{unix.AF_INET6, unix.SOCK_STREAM, unix.IPPROTO_SCTP}, want: eacces},
			{name: "deny/udp", nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_DGRAM | flags, 0}, want: eacces},
			{name: "allow/udp-allowed", udp: true, nr: a.socket, args: []uint64{unix.AF_INET6, unix.SOCK_DGRAM | flags, unix.IPPROTO_UDP}, want: allow},
			{name: "deny/icmp-udp-allowed", udp: true, nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP}, want: eacces},
			{name: "deny/raw", udp: true, nr: a.socket, args: []uint64{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW}, want: eacces},
			{name: "deny/unix", nr: a.socket, args: []uint64{unix.AF_UNIX, unix.SOCK_STREAM | flags, 0}, want: eacces},
			{name: "deny/packet", nr: a.socket, args: []uint64{unix.AF_PACKET, unix.SOCK_RAW, 0}, want: eafno},
			{name: "deny/vsock", nr: a.socket, args: []uint64{unix.AF_VSOCK, unix.SOCK_STREAM, 0}, want: eafno},
			{name: "allow/netlink-route", nr: a.socket, args: []uint64{unix.AF_NETLINK, unix.SOCK_RAW | flags, unix.NETLINK_ROUTE}, want: allow},
			{name: "deny/netlink-diag", nr: a.socket, args: []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_SOCK_DIAG}, want: eacces},
			{name: "deny/netlink-route-stream", nr: a.socket, args: []uint64{unix.AF_NETLINK, unix.SOCK_STREAM, unix.NETLINK_ROUTE}, want: eacces},
			{name: "allow/socketpair-stream", nr: a.socketpair, args: []uint64{unix.AF_UNIX, unix.SOCK_STREAM | flags, 0}, want: allow},
			{name: "allow/socketpair-seqpacket", nr: a.socketpair, args: []uint64{unix.AF_UNIX, unix.SOCK_SEQPACKET, 0}, want: allow},
			{name: "deny/socketpair-dgram", nr: a.socketpair, args: []uint64{unix.AF_UNIX, unix.SOCK_DGRAM, 0}, want: eacces},
			{name: "deny/socketpair-tipc", nr: a.socketpair, args: []uint64{unix.AF_TIPC, unix.SOCK_STREAM, 0}, want: eafno},
			{name: "deny/io_uring_setup", nr: a.ioUringSetup, want: enosys},
			{name: "deny/io_uring_enter", nr: a.ioUringEnter, want: enosys},
			{name: "deny/io_uring_register", nr: a.ioUringRegister, want: enosys},
		} {
			t.Run(fmt.Sprintf("%s/%s", arch.name, tc.name), func(t *testing.T) {
				prog, err := socketFilter(a, filterOptions{udp: tc.udp})
				if err != nil {
					t.Fatal(err)
				}
				audit := a.audit
				if tc.audit != 0 {
					audit = tc.audit
				}
				if got := runBPF(t, prog, audit, tc.nr, tc.args...); got != tc.want {
					t.Errorf("action %#x, want %#x", got, tc.want)
				}
			})
		}
	}
	t.Run("amd64/kill/x32", func(t *testing.T) {
		prog, _ := socketFilter(amd64, filterOptions{})
		if got := runBPF(t, prog, amd64.audit, x32Bit|amd64.socket, unix.AF_INET, unix.SOCK_STREAM); got != kill {
			t.Errorf("action %#x, want kill", got)
		}
	})
	t.Run("arm64/allow/no-x32-check", func(t *testing.T) {
		prog, _ := socketFilter(arm64, filterOptions{})
		if got := runBPF(t, prog, arm64.audit, 0x40000000|39); got != allow {
			t.Errorf("action %#x, want allow", got)
		}
	})
}
