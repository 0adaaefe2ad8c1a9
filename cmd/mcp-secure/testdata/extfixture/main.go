// Command extfixture is an external plugin for the end-to-end tests: each
// tool misbehaves in one way. With --persistent it serves a request a
// line; with --child it only sleeps (the grandchild of a hanging call).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type request struct {
	Tool      string         `json:"tool"`
	Arguments map[string]any `json:"arguments"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--child" {
		time.Sleep(time.Hour)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "--persistent" {
		in := bufio.NewReader(os.Stdin)
		for {
			line, err := in.ReadBytes('\n')
			if err != nil {
				return
			}
			var req request
			if err := json.Unmarshal(line, &req); err != nil {
				answer(fmt.Sprintf("bad request: %v", err), true)
				continue
			}
			handle(req)
		}
	}
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		os.Exit(2)
	}
	handle(req)
}

func answer(text string, isError bool) {
	out, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}, "isError": isError})
	os.Stdout.Write(append(out, '\n'))
}

func str(req request, key string) string {
	s, _ := req.Arguments[key].(string)
	return s
}

func handle(req request) {
	// Tools are named <prefix>_<what>: the same program serves several
	// plugins.
	switch req.Tool[strings.LastIndex(req.Tool, "_")+1:] {
	case "echo":
		answer(fmt.Sprintf("pid=%d text=%s env=%s home=%s", os.Getpid(), str(req, "text"), os.Getenv("FX_PASSED")+"|"+os.Getenv("FX_NOT_PASSED"), os.Getenv("HOME")), false)
	case "fail":
		fmt.Fprintln(os.Stderr, "fail: token=Bearer abcdefghijklmnopqrstuvwxyz0123456789")
		answer("the tool says no", true)
	case "exit":
		fmt.Fprintln(os.Stderr, "exit: giving up")
		os.Exit(3)
	case "crash":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Second)
	case "hang", "killer", "stopper":
		child := exec.Command(os.Args[0], "--child")
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // try to escape
		if err := child.Start(); err != nil {
			answer("starting child: "+err.Error(), true)
			return
		}
		pids := fmt.Sprintf("%d %d\n", os.Getpid(), child.Process.Pid)
		if err := os.WriteFile(str(req, "pidfile"), []byte(pids), 0o600); err != nil {
			answer("writing pidfile: "+err.Error(), true)
			return
		}
		// killer kills its parent too, the sandbox's launcher; stopper
		// stops it.
		for suffix, sig := range map[string]syscall.Signal{"_killer": syscall.SIGKILL, "_stopper": syscall.SIGSTOP} {
			if strings.HasSuffix(req.Tool, suffix) {
				if err := syscall.Kill(os.Getppid(), sig); err != nil {
					answer("signalling the launcher: "+err.Error(), true)
					return
				}
			}
		}
		time.Sleep(time.Hour)
	case "huge":
		text := strings.Repeat("x", 2<<20)
		answer(text, false)
	case "noisy":
		// 2 MiB on stderr, in lines of 64 bytes, then an answer: the
		// server must drain the pipe and log no more than its caps.
		line := strings.Repeat("noise ", 10) + "end\n"
		w := bufio.NewWriterSize(os.Stderr, 64<<10)
		for range (2 << 20) / len(line) {
			w.WriteString(line)
		}
		w.Flush()
		answer("quiet now", false)
	case "garbage":
		fmt.Println("this is not JSON")
	case "read":
		data, err := os.ReadFile(str(req, "path"))
		if err != nil {
			answer("read failed: "+err.Error(), true)
			return
		}
		answer("read ok: "+string(data), false)
	case "write":
		if err := os.WriteFile(str(req, "path"), []byte("written"), 0o600); err != nil {
			answer("write failed: "+err.Error(), true)
			return
		}
		answer("write ok", false)
	case "connect":
		port, _ := req.Arguments["port"].(float64)
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), 3*time.Second)
		if err != nil {
			answer("connect failed: "+err.Error(), true)
			return
		}
		c.Close()
		answer("connect ok", false)
	case "spawn":
		out, err := exec.Command(str(req, "path")).CombinedOutput()
		if err != nil {
			answer("spawn failed: "+err.Error(), true)
			return
		}
		answer("spawn ok: "+string(out), false)
	default:
		answer("unknown tool "+req.Tool, true)
	}
}
