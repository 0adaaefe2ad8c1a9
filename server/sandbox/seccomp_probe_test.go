//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The net probe runs as a child (the test binary, started with
// SANDBOX_TEST_HELPER=net) and tries, with raw system calls, what the
// socket filter is to refuse or allow. It prints one "name=result" line
// per attempt: "ok" or the errno's name.

const ipprotoMPTCP = 262

func netProbe() int {
	env := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	tcpPort, udpPort, unixPath := env("PROBE_TCP"), env("PROBE_UDP"), os.Getenv("PROBE_UNIX")
	if os.Getenv("PROBE_X32") == "1" {
		// getpid through the x32 ABI: the filter kills the process.
		unix.Syscall(unix.SYS_GETPID|0x40000000, 0, 0, 0)
		fmt.Println("x32=survived")
		return 0
	}
	var out []string
	say := func(name string, err error) {
		r := "ok"
		if err != nil {
			if e, ok := err.(unix.Errno); ok {
				r = unix.ErrnoName(e)
			} else {
				r = err.Error()
			}
		}
		out = append(out, name+"="+r)
	}
	loop4 := [4]byte{127, 0, 0, 1}

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	say("unix-socket", err)
	if err == nil {
		say("unix-connect", unix.Connect(fd, &unix.SockaddrUnix{Name: unixPath}))
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	say("unix-dgram-socket", err)
	if err == nil {
		unix.Close(fd)
	}

	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	say("udp-socket", err)
	if err == nil {
		say("udp-sendto", unix.Sendto(fd, []byte("UDP-FROM-CHILD"), 0, &unix.SockaddrInet4{Port: udpPort, Addr: loop4}))
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_UDP)
	say("udp6-socket", err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
	say("icmp-socket", err)
	if err == nil {
		unix.Close(fd)
	}

	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	say("tcp-socket", err)
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: tcpPort, Addr: loop4})
		if err == nil {
			buf := make([]byte, 64)
			var n int
			n, err = unix.Read(fd, buf)
			if err == nil && !strings.HasPrefix(string(buf[:n]), "hello") {
				err = fmt.Errorf("read %q", buf[:n])
			}
		}
		say("tcp-connect", err)
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP)
	say("mptcp-socket", err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	say("raw-socket", err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0)
	say("packet-socket", err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	say("netlink-route", err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_SOCK_DIAG)
	say("netlink-diag", err)
	if err == nil {
		unix.Close(fd)
	}

	for _, typ := range []struct {
		name string
		t    int
	}{{"stream", unix.SOCK_STREAM}, {"seqpacket", unix.SOCK_SEQPACKET}, {"dgram", unix.SOCK_DGRAM}} {
		fds, err := unix.Socketpair(unix.AF_UNIX, typ.t|unix.SOCK_CLOEXEC, 0)
		if err == nil && typ.t == unix.SOCK_STREAM {
			if _, err = unix.Write(fds[0], []byte("x")); err == nil {
				b := make([]byte, 1)
				_, err = unix.Read(fds[1], b)
			}
		}
		if err == nil && typ.t == unix.SOCK_DGRAM {
			// A datagram end may be sent from to any pathname socket.
			say("socketpair-dgram-sendto", unix.Sendto(fds[0], []byte("DGRAM-FROM-CHILD"), 0, &unix.SockaddrUnix{Name: unixPath + ".dgram"}))
		}
		say("socketpair-"+typ.name, err)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
	}

	_, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0)
	if errno == 0 {
		say("io_uring", nil)
	} else {
		say("io_uring", errno)
	}
	// The parent is the launcher, whose forking thread shares our
	// Landlock domain. PTRACE_SEIZE does not stop it; exiting detaches.
	if os.Getenv("PROBE_PTRACE") == "1" {
		say("ptrace-launcher", unix.PtraceSeize(os.Getppid()))
	}
	fmt.Println(strings.Join(out, "\n"))
	return 0
}
