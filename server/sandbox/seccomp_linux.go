//go:build linux

package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket filter: a seccomp-BPF program the launcher installs on the
// thread that forks the target, after no_new_privs and before Landlock
// (a launcher started ahead installs it while it waits). Filters
// are inherited by every descendant and kept across execve, and cannot
// be removed. It refuses what Landlock (up to ABI 7) leaves open:
//
//   - socket(AF_UNIX, ...): EACCES. Without it a child could connect to
//     any pathname unix socket it can name (/run/docker.sock, a database,
//     the session bus); Landlock scopes only abstract ones.
//     socketpair(AF_UNIX, SOCK_STREAM or SOCK_SEQPACKET) stays allowed
//     (runtimes use it; its two ends are connected to each other and
//     cannot be reconnected); socketpair(AF_UNIX, SOCK_DGRAM) is refused,
//     as a datagram socket can sendto or connect to a pathname socket.
//   - socket(AF_INET/AF_INET6, ...) other than a TCP stream (type
//     SOCK_STREAM with protocol 0 or IPPROTO_TCP), which Landlock
//     confines to the allowed ports: no UDP unless the rules allow it
//     (then SOCK_DGRAM with protocol 0 or IPPROTO_UDP, to any address:
//     the address is behind a pointer seccomp cannot read), no raw or
//     ICMP sockets, no MPTCP or SCTP streams (Landlock's port rules are
//     written for TCP; these are refused rather than trusted to them).
//   - socket(AF_NETLINK, ...) but NETLINK_ROUTE (SOCK_RAW or SOCK_DGRAM):
//     route netlink answers queries about the host's interfaces and
//     routes (glibc's getaddrinfo asks it which address families are
//     configured); without capabilities it cannot change them nor send
//     to another process. Other netlink families (sock_diag, audit,
//     uevents, netfilter, generic) are refused.
//   - every other address family (AF_PACKET, AF_VSOCK, AF_BLUETOOTH,
//     AF_ALG...): EAFNOSUPPORT.
//   - io_uring_setup, io_uring_enter, io_uring_register: ENOSYS, as if
//     the kernel had no io_uring (runtimes fall back to epoll). io_uring
//     can create and connect sockets without the socket system calls
//     this filter inspects.
//   - a system call of another ABI (x86 32-bit or x32 on amd64, AArch32
//     on arm64): the process is killed, as the numbers above would not
//     mean the same calls.
//
// The type argument is compared with SOCK_NONBLOCK and SOCK_CLOEXEC
// masked off; any other flag makes it unequal, and so refused. Only the
// low 32 bits of each argument are read: the kernel takes them as int.

// seccomp_data offsets: nr, arch, instruction pointer, then six 64-bit
// arguments (little endian on both architectures we filter: the low half
// comes first).
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16
)

func offArg(i int) uint32 { return uint32(offArg0 + 8*i) }

// x32Bit marks the x32 ABI's system call numbers on amd64.
const x32Bit = 0x40000000

const typeFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC

// filterOptions are what the socket filter may let through beyond TCP.
type filterOptions struct {
	udp bool
}

// asm builds a BPF program with symbolic jump targets.
type asm struct {
	insns  []unix.SockFilter
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at     int
	jt, jf string // "" means the next instruction
}

func (a *asm) label(name string) { a.labels[name] = len(a.insns) }

func (a *asm) stmt(code uint16, k uint32) {
	a.insns = append(a.insns, unix.SockFilter{Code: code, K: k})
}

// jeq jumps to jt when A == k and to jf (or falls through) otherwise.
func (a *asm) jump(code uint16, k uint32, jt, jf string) {
	a.fixups = append(a.fixups, fixup{at: len(a.insns), jt: jt, jf: jf})
	a.insns = append(a.insns, unix.SockFilter{Code: code, K: k})
}

func (a *asm) jeq(k uint32, jt string) { a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, k, jt, "") }

func (a *asm) ret(k uint32) { a.stmt(unix.BPF_RET|unix.BPF_K, k) }

func (a *asm) load(off uint32) { a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }

func (a *asm) resolve() ([]unix.SockFilter, error) {
	for _, f := range a.fixups {
		for _, t := range []struct {
			name string
			dst  *uint8
		}{{f.jt, &a.insns[f.at].Jt}, {f.jf, &a.insns[f.at].Jf}} {
			if t.name == "" {
				continue
			}
			to, ok := a.labels[t.name]
			if !ok {
				return nil, fmt.Errorf("seccomp: no label %q", t.name)
			}
			d := to - f.at - 1
			if d < 0 || d > 255 {
				return nil, fmt.Errorf("seccomp: jump to %q out of range", t.name)
			}
			*t.dst = uint8(d)
		}
	}
	return a.insns, nil
}

func retErrno(e unix.Errno) uint32 {
	return unix.SECCOMP_RET_ERRNO | (uint32(e) & unix.SECCOMP_RET_DATA)
}

// socketFilter is the program for arch (see filterArch), letting through
// what o allows.
func socketFilter(arch *archInfo, o filterOptions) ([]unix.SockFilter, error) {
	a := &asm{labels: map[string]int{}}
	a.load(offArch)
	a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, arch.audit, "", "kill")
	a.load(offNr)
	if arch.x32 {
		a.jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, x32Bit, "kill", "")
	}
	a.jeq(arch.socket, "socket")
	a.jeq(arch.socketpair, "socketpair")
	a.jeq(arch.ioUringSetup, "enosys")
	a.jeq(arch.ioUringEnter, "enosys")
	a.jeq(arch.ioUringRegister, "enosys")
	a.ret(unix.SECCOMP_RET_ALLOW)

	// socket(domain, type, protocol)
	a.label("socket")
	a.load(offArg(0))
	a.jeq(unix.AF_INET, "inet")
	a.jeq(unix.AF_INET6, "inet")
	a.jeq(unix.AF_NETLINK, "netlink")
	a.jeq(unix.AF_UNIX, "eacces")
	a.ret(retErrno(unix.EAFNOSUPPORT))

	a.label("inet")
	a.load(offArg(1))
	a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, ^uint32(typeFlags))
	a.jeq(unix.SOCK_STREAM, "stream")
	if o.udp {
		a.jeq(unix.SOCK_DGRAM, "dgram")
	}
	a.ret(retErrno(unix.EACCES))

	a.label("stream")
	a.load(offArg(2))
	a.jeq(0, "allow")
	a.jeq(unix.IPPROTO_TCP, "allow")
	a.ret(retErrno(unix.EACCES))

	if o.udp {
		a.label("dgram")
		a.load(offArg(2))
		a.jeq(0, "allow")
		a.jeq(unix.IPPROTO_UDP, "allow")
		a.ret(retErrno(unix.EACCES))
	}

	a.label("netlink")
	a.load(offArg(2))
	a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.NETLINK_ROUTE, "", "eacces")
	a.load(offArg(1))
	a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, ^uint32(typeFlags))
	a.jeq(unix.SOCK_RAW, "allow")
	a.jeq(unix.SOCK_DGRAM, "allow")
	a.ret(retErrno(unix.EACCES))

	// socketpair(domain, type, protocol, sv)
	a.label("socketpair")
	a.load(offArg(0))
	a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AF_UNIX, "", "eafnosupport")
	a.load(offArg(1))
	a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, ^uint32(typeFlags))
	a.jeq(unix.SOCK_STREAM, "allow")
	a.jeq(unix.SOCK_SEQPACKET, "allow")
	a.ret(retErrno(unix.EACCES))

	a.label("allow")
	a.ret(unix.SECCOMP_RET_ALLOW)
	a.label("eacces")
	a.ret(retErrno(unix.EACCES))
	a.label("eafnosupport")
	a.ret(retErrno(unix.EAFNOSUPPORT))
	a.label("enosys")
	a.ret(retErrno(unix.ENOSYS))
	a.label("kill")
	a.ret(unix.SECCOMP_RET_KILL_PROCESS)
	return a.resolve()
}

// installFilter puts the socket filter on the calling thread, which must
// have no_new_privs. Without SECCOMP_FILTER_FLAG_TSYNC it binds this
// thread only, like Landlock: the thread that forks the target.
func installFilter(o filterOptions) error {
	if filterArch == nil {
		return fmt.Errorf("seccomp: no socket filter for this architecture")
	}
	prog, err := socketFilter(filterArch, o)
	if err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp: install the socket filter: %w", errno)
	}
	return nil
}

// probeFilter says why the socket filter cannot be installed, or "".
func probeFilter() string {
	if filterArch == nil {
		return "no seccomp socket filter for this architecture"
	}
	for _, action := range []uint32{unix.SECCOMP_RET_KILL_PROCESS, unix.SECCOMP_RET_ERRNO} {
		if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action))); errno != 0 {
			return fmt.Sprintf("the kernel has no seccomp filter action %#x: %v", action, errno)
		}
	}
	return ""
}
