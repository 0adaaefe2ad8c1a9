package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"sync"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// rawLauncher starts a rawUpstream per Launch: an MCP server written by
// hand, over real pipes (os.Pipe), whose tools/call answers are scripted
// so that they can break the protocol.
type rawLauncher struct {
	script func(u *rawUpstream, tool string, id json.RawMessage, args json.RawMessage)
	// tools is the tools/list result; empty means rawTools.
	tools string

	mu        sync.Mutex
	launches  int
	upstreams []*rawUpstream
}

func (l *rawLauncher) Launch(context.Context) (plugin.Process, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	u := &rawUpstream{in: inR, out: outW, script: l.script, tools: l.tools, done: make(chan struct{}), cancelled: make(chan string, 16), errW: errW}
	l.mu.Lock()
	l.launches++
	l.upstreams = append(l.upstreams, u)
	l.mu.Unlock()
	go u.serve()
	return &rawProcess{u: u, stdin: inW, stdout: outR, stderr: errR}, nil
}

func (l *rawLauncher) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.launches
}

func (l *rawLauncher) upstream(i int) *rawUpstream {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.upstreams[i]
}

// rawUpstream is the server's side of the pipes.
type rawUpstream struct {
	in        *os.File // its stdin
	out       *os.File // its stdout
	errW      *os.File
	script    func(u *rawUpstream, tool string, id json.RawMessage, args json.RawMessage)
	tools     string // the tools/list result; empty means rawTools
	wmu       sync.Mutex
	exitOnce  sync.Once
	done      chan struct{} // closed when it has exited
	cancelled chan string   // the requestId of each notifications/cancelled
}

// send writes one line to its stdout.
func (u *rawUpstream) send(line string) {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	u.out.WriteString(line + "\n")
}

// exit ends the server: its ends of the pipes are closed.
func (u *rawUpstream) exit() {
	u.exitOnce.Do(func() {
		u.out.Close()
		u.in.Close()
		u.errW.Close()
		close(u.done)
	})
}

// answer sends a tools/call result with text.
func (u *rawUpstream) answer(id json.RawMessage, text string) {
	t, _ := json.Marshal(text)
	u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":` + string(t) + `}]}}`)
}

const rawTools = `{"tools":[` +
	`{"name":"echo","description":"Echoes.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}},` +
	`{"name":"other","description":"Anything else.","inputSchema":{"type":"object"}}]}`

// serve reads requests until its stdin ends.
func (u *rawUpstream) serve() {
	defer u.exit()
	br := bufio.NewReaderSize(u.in, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
				RequestID json.RawMessage `json:"requestId"`
				Version   string          `json:"protocolVersion"`
			} `json:"params"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			continue
		}
		switch m.Method {
		case "initialize":
			u.send(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"protocolVersion":"` + m.Params.Version + `","capabilities":{"tools":{}},"serverInfo":{"name":"raw","version":"1"}}}`)
		case "tools/list":
			list := u.tools
			if list == "" {
				list = rawTools
			}
			u.send(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":` + list + `}`)
		case "tools/call":
			u.script(u, m.Params.Name, m.ID, m.Params.Arguments)
		case "notifications/cancelled":
			select {
			case u.cancelled <- string(m.Params.RequestID):
			default:
			}
		case "ping":
			u.send(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{}}`)
		default:
			if len(m.ID) > 0 { // server/discover among others: the client falls back to initialize
				u.send(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"error":{"code":-32601,"message":"method not found"}}`)
			}
		}
	}
}

// rawProcess is a rawUpstream seen as a plugin.Process.
type rawProcess struct {
	u      *rawUpstream
	stdin  *os.File
	stdout *os.File
	stderr *os.File
}

func (p *rawProcess) Stdin() io.WriteCloser { return p.stdin }
func (p *rawProcess) Stdout() io.ReadCloser { return p.stdout }
func (p *rawProcess) Stderr() io.ReadCloser { return p.stderr }
func (p *rawProcess) Pid() int              { return 0 }
func (p *rawProcess) Kill()                 { p.u.exit() }
func (p *rawProcess) Wait() (int, error)    { <-p.u.done; return 1, nil }

// echoScript answers every call with the arguments' text.
func echoScript(u *rawUpstream, _ string, id json.RawMessage, args json.RawMessage) {
	var a struct{ Text string }
	json.Unmarshal(args, &a)
	u.answer(id, a.Text)
}
