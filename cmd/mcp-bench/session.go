package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// maxLine bounds one answer from the server.
const maxLine = 64 << 20

// exitWait is how long a server gets to exit after its stdin closes,
// before SIGTERM, and again before SIGKILL.
const exitWait = 5 * time.Second

// Error kinds, besides "jsonrpc <code>".
const (
	kindIsError = "isError"
	kindTimeout = "timeout"
	kindClosed  = "closed" // the server exited or closed stdout with the request pending
	kindBadJSON = "unparseable answer"
)

// runResult is what one run (one spawned server) measured.
type runResult struct {
	SpawnToHandshake   time.Duration     `json:"spawn_to_handshake_ns"`
	SpawnToFirstAnswer time.Duration     `json:"spawn_to_first_answer_ns"`
	Sent               int               `json:"sent"`
	Answered           int               `json:"answered"`
	OK                 int               `json:"ok"`
	Errors             map[string]int    `json:"errors,omitempty"`
	ErrorSamples       map[string]string `json:"error_samples,omitempty"` // the first answer of each kind, truncated
	Latency            latencySummary    `json:"latency_ns"`
	Elapsed            time.Duration     `json:"elapsed_ns"`
	Throughput         float64           `json:"throughput_per_s"`
	PeakRSSKiB         int64             `json:"peak_rss_kib"`
	RSSAfterWarmupKiB  int64             `json:"rss_after_warmup_kib,omitempty"`
	RSSEndKiB          int64             `json:"rss_end_kib,omitempty"`
	CPUUser            time.Duration     `json:"cpu_user_ns"`
	CPUSys             time.Duration     `json:"cpu_sys_ns"`
	CPUMeasured        time.Duration     `json:"cpu_measured_phase_ns,omitempty"`
	ExitCode           int               `json:"exit_code"`
}

// session is one spawned server and the requests in flight on it.
type session struct {
	cfg   *config
	cmd   *exec.Cmd
	stdin io.WriteCloser
	home  string // temporary HOME, removed at the end
	spawn time.Time
	log   *tailBuffer

	reqPrefix, reqSuffix []byte // a workload request is prefix + id + suffix

	mu           sync.Mutex
	pending      map[int64]pendingReq
	record       bool
	lat          []time.Duration
	errs         map[string]int
	samples      map[string]string
	answered     int
	ok           int
	first        time.Duration // spawn to first workload answer
	last         time.Time     // latest workload answer
	sentMeasured int
	handshakeAt  time.Time
	readErr      error
	slots        chan struct{}
	done         chan struct{} // closed when the reader stops
	handshk      chan response
}

type pendingReq struct {
	start    time.Time
	measured bool
}

// response is the part of an answer mcp-bench looks at.
type response struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Result struct {
		IsError bool `json:"isError"`
	} `json:"result"`
	at time.Time
}

// runOnce spawns argv, measures one run and stops the server.
func runOnce(cfg *config, argv []string, progress func(answered, inFlight int)) (*runResult, error) {
	s := &session{
		cfg:     cfg,
		pending: make(map[int64]pendingReq, cfg.Concurrency),
		errs:    map[string]int{},
		samples: map[string]string{},
		lat:     make([]time.Duration, 0, min(cfg.Calls, 1<<20)),
		slots:   make(chan struct{}, cfg.Concurrency),
		done:    make(chan struct{}),
		handshk: make(chan response, 1),
		log:     &tailBuffer{max: 16 << 10},
	}
	s.reqPrefix, s.reqSuffix = requestTemplate(cfg, cfg.Method, cfg.Params)
	if err := s.start(argv); err != nil {
		return nil, err
	}
	res, err := s.measure(progress)
	stopErr := s.stop(res)
	if err != nil {
		return nil, s.withLog(err)
	}
	if stopErr != nil {
		return nil, s.withLog(stopErr)
	}
	return res, nil
}

func (s *session) withLog(err error) error {
	if tail := bytes.TrimSpace(s.log.Bytes()); len(tail) > 0 {
		return fmt.Errorf("%w\nserver stderr (last lines):\n%s", err, tail)
	}
	return err
}

func (s *session) start(argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = s.log
	if !s.cfg.KeepEnv {
		home, err := os.MkdirTemp("", "mcp-bench-home-")
		if err != nil {
			return err
		}
		s.home = home
		cmd.Env = freshEnv(os.Environ(), home)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	s.cmd, s.stdin = cmd, stdin
	s.spawn = time.Now()
	if err := cmd.Start(); err != nil {
		s.cleanup()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go s.readLoop(stdout)
	return nil
}

// freshEnv is env with HOME and the XDG base directories under home.
func freshEnv(env []string, home string) []string {
	set := map[string]string{
		"HOME":            home,
		"XDG_CONFIG_HOME": home + "/.config",
		"XDG_DATA_HOME":   home + "/.local/share",
		"XDG_STATE_HOME":  home + "/.local/state",
		"XDG_CACHE_HOME":  home + "/.cache",
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := bytes.Cut([]byte(kv), []byte("="))
		if _, ok := set[string(k)]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range []string{"HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"} {
		out = append(out, k+"="+set[k])
	}
	return out
}

// requestTemplate renders a request with every field but its id.
func requestTemplate(cfg *config, method string, params json.RawMessage) (prefix, suffix []byte) {
	if cfg.stateless() {
		params = withMeta(params, cfg.Protocol)
	}
	prefix = []byte(`{"jsonrpc":"2.0","id":`)
	m, _ := json.Marshal(method)
	suffix = append([]byte(`,"method":`), m...)
	if len(params) > 0 {
		suffix = append(suffix, `,"params":`...)
		suffix = append(suffix, params...)
	}
	suffix = append(suffix, "}\n"...)
	return prefix, suffix
}

// withMeta adds the stateless protocol's per-request _meta to params.
func withMeta(params json.RawMessage, version string) json.RawMessage {
	obj := map[string]json.RawMessage{}
	if len(params) > 0 {
		_ = json.Unmarshal(params, &obj)
	}
	meta := map[string]json.RawMessage{}
	if m, ok := obj["_meta"]; ok {
		_ = json.Unmarshal(m, &meta)
	}
	v, _ := json.Marshal(version)
	meta["io.modelcontextprotocol/protocolVersion"] = v
	meta["io.modelcontextprotocol/clientInfo"] = json.RawMessage(clientInfo)
	meta["io.modelcontextprotocol/clientCapabilities"] = json.RawMessage(`{}`)
	obj["_meta"], _ = json.Marshal(meta)
	out, _ := json.Marshal(obj)
	return out
}

const clientInfo = `{"name":"mcp-bench","version":"1"}`

// handshakeID is the id of initialize or server/discover; workload ids
// start at 1.
const handshakeID = 0

func (s *session) handshake() error {
	var line []byte
	if s.cfg.stateless() {
		p, sfx := requestTemplate(s.cfg, "server/discover", nil)
		line = append(append(p, '0'), sfx...)
	} else {
		params, _ := json.Marshal(map[string]any{
			"protocolVersion": s.cfg.Protocol,
			"capabilities":    map[string]any{},
			"clientInfo":      json.RawMessage(clientInfo),
		})
		p, sfx := requestTemplate(s.cfg, "initialize", params)
		line = append(append(p, '0'), sfx...)
	}
	if _, err := s.stdin.Write(line); err != nil {
		return fmt.Errorf("handshake: write: %w", err)
	}
	timer := time.NewTimer(s.cfg.Timeout)
	defer timer.Stop()
	var r response
	select {
	case r = <-s.handshk:
	case <-s.done:
		return fmt.Errorf("handshake: server closed its output: %v", s.readErr)
	case <-timer.C:
		return fmt.Errorf("handshake: no answer within %s", s.cfg.Timeout)
	}
	if r.Error != nil {
		return fmt.Errorf("handshake: error %d: %s", r.Error.Code, r.Error.Message)
	}
	if !s.cfg.stateless() {
		if _, err := io.WriteString(s.stdin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
			return fmt.Errorf("handshake: write: %w", err)
		}
	}
	return nil
}

func (s *session) measure(progress func(answered, inFlight int)) (*runResult, error) {
	res := &runResult{}
	if err := s.handshake(); err != nil {
		return res, err
	}
	res.SpawnToHandshake = s.handshakeAt.Sub(s.spawn)
	next := int64(handshakeID + 1)
	if s.cfg.Warmup > 0 {
		if _, err := s.phase(&next, s.cfg.Warmup, s.cfg.Duration, false, nil); err != nil {
			return res, fmt.Errorf("warmup: %w", err)
		}
	}
	res.RSSAfterWarmupKiB, _ = procStatus(s.cmd.Process.Pid, "VmRSS")
	cpu0, cpuOK := procCPU(s.cmd.Process.Pid)
	elapsed, err := s.phase(&next, s.cfg.Calls, s.cfg.Duration, true, progress)
	if cpu1, ok := procCPU(s.cmd.Process.Pid); ok && cpuOK {
		res.CPUMeasured = cpu1 - cpu0
	}
	res.PeakRSSKiB, _ = procStatus(s.cmd.Process.Pid, "VmHWM")
	res.RSSEndKiB, _ = procStatus(s.cmd.Process.Pid, "VmRSS")

	s.mu.Lock()
	defer s.mu.Unlock()
	res.SpawnToFirstAnswer = s.first
	res.Sent = s.sentMeasured
	res.Answered = s.answered
	res.OK = s.ok
	res.Errors = s.errs
	if len(s.samples) > 0 {
		res.ErrorSamples = s.samples
	}
	res.Latency = summarize(s.lat)
	res.Elapsed = elapsed
	if elapsed > 0 {
		res.Throughput = float64(s.answered) / elapsed.Seconds()
	}
	return res, err
}

// phase sends up to n workload requests within d, at most Concurrency in
// flight, and waits for their answers (each up to Timeout). It returns the
// time from the first write to the last answer.
func (s *session) phase(next *int64, n int, d time.Duration, record bool, progress func(answered, inFlight int)) (time.Duration, error) {
	s.mu.Lock()
	s.record = record
	s.mu.Unlock()
	start := time.Now()
	deadline := start.Add(d)
	sweep := time.NewTicker(timeoutSweep(s.cfg.Timeout))
	defer sweep.Stop()
	var tick <-chan time.Time
	if progress != nil {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		tick = t.C
	}
	buf := make([]byte, 0, len(s.reqPrefix)+len(s.reqSuffix)+20)
	sent := 0
	var err error
send:
	for sent < n && time.Now().Before(deadline) {
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			err = s.closedErr()
			break send
		case <-sweep.C:
			s.expire()
			continue
		case <-tick:
			s.report(progress)
			continue
		}
		if s.cfg.Pause > 0 && sent > 0 {
			// Lockstep: the slot is free, the last answer is in.
			select {
			case <-time.After(s.cfg.Pause):
			case <-s.done:
				<-s.slots
				err = s.closedErr()
				break send
			}
		}
		if !time.Now().Before(deadline) {
			<-s.slots
			break
		}
		id := *next
		*next++
		buf = append(strconv.AppendInt(append(buf[:0], s.reqPrefix...), id, 10), s.reqSuffix...)
		s.mu.Lock()
		s.pending[id] = pendingReq{start: time.Now(), measured: record}
		if record {
			s.sentMeasured++
		}
		s.mu.Unlock()
		if _, werr := s.stdin.Write(buf); werr != nil {
			err = fmt.Errorf("write: %w", werr)
			break
		}
		sent++
	}
	// Wait for the answers: all slots free again.
	for held := 0; held < cap(s.slots); {
		select {
		case s.slots <- struct{}{}:
			held++
		case <-s.done:
			s.failPending(kindClosed)
			if err == nil {
				err = s.closedErr()
			}
			held = cap(s.slots)
		case <-sweep.C:
			s.expire()
		case <-tick:
			s.report(progress)
		}
	}
	elapsed := s.lastAnswer().Sub(start)
	drain(s.slots)
	if elapsed < 0 {
		elapsed = 0
	}
	return elapsed, err
}

func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func timeoutSweep(t time.Duration) time.Duration {
	return min(max(t/10, time.Millisecond), 100*time.Millisecond)
}

func (s *session) report(progress func(answered, inFlight int)) {
	s.mu.Lock()
	a, f := s.answered, len(s.pending)
	s.mu.Unlock()
	progress(a, f)
}

func (s *session) closedErr() error {
	if s.readErr != nil && !errors.Is(s.readErr, io.EOF) {
		return fmt.Errorf("server output: %w", s.readErr)
	}
	return errors.New("server closed its output")
}

// expire counts the requests older than Timeout as timed out and frees
// their slots; their late answers are ignored.
func (s *session) expire() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.pending {
		if now.Sub(p.start) >= s.cfg.Timeout {
			delete(s.pending, id)
			if p.measured {
				s.errs[kindTimeout]++
			}
			<-s.slots
		}
	}
}

// failPending counts every pending request as failed with kind.
func (s *session) failPending(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.pending {
		delete(s.pending, id)
		if p.measured {
			s.errs[kind]++
		}
	}
}

func (s *session) lastAnswer() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// readLoop reads the server's answers until it closes stdout.
func (s *session) readLoop(stdout io.Reader) {
	defer close(s.done)
	r := bufio.NewReaderSize(stdout, 64<<10)
	var long []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(line) > maxLine {
				s.readErr = fmt.Errorf("an answer is longer than %d bytes", maxLine)
				return
			}
			long = append(long, line...)
			continue
		}
		if len(long) > 0 {
			line = append(long, line...)
			long = long[:0]
		}
		if len(bytes.TrimSpace(line)) > 0 {
			s.answer(line, time.Now())
		}
		if err != nil {
			s.readErr = err
			return
		}
	}
}

// answer accounts for one line from the server.
func (s *session) answer(line []byte, at time.Time) {
	var r response
	if err := json.Unmarshal(line, &r); err != nil {
		s.mu.Lock()
		if s.record {
			s.errs[kindBadJSON]++
		}
		s.mu.Unlock()
		return
	}
	if r.Method != "" {
		// A request or notification from the server: not an answer.
		return
	}
	// Ids go out as numbers; a server that echoes them as strings is
	// matched too.
	id, err := strconv.ParseInt(string(bytes.Trim(r.ID, `"`)), 10, 64)
	if err != nil {
		return
	}
	if id == handshakeID {
		s.mu.Lock()
		s.handshakeAt = at
		s.mu.Unlock()
		select {
		case s.handshk <- r:
		default:
		}
		return
	}
	s.mu.Lock()
	p, ok := s.pending[id]
	if !ok {
		s.mu.Unlock()
		return // late (timed out) or unknown
	}
	delete(s.pending, id)
	s.last = at
	if s.first == 0 {
		s.first = at.Sub(s.spawn)
	}
	if p.measured {
		s.answered++
		kind := ""
		switch {
		case r.Error != nil:
			kind = "jsonrpc " + strconv.FormatInt(r.Error.Code, 10)
		case r.Result.IsError:
			kind = kindIsError
		default:
			s.ok++
		}
		if kind != "" {
			s.errs[kind]++
			if _, seen := s.samples[kind]; !seen {
				s.samples[kind] = sample(line)
			}
		}
		s.lat = append(s.lat, at.Sub(p.start))
	}
	s.mu.Unlock()
	<-s.slots
}

// maxSample bounds an error sample.
const maxSample = 300

func sample(line []byte) string {
	line = bytes.TrimSpace(line)
	if len(line) > maxSample {
		return string(line[:maxSample]) + "…"
	}
	return string(line)
}

// stop closes the server's stdin, waits for it to exit (then TERM, then
// KILL) and records its resource usage in res.
func (s *session) stop(res *runResult) error {
	defer s.cleanup()
	_ = s.stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- s.cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-time.After(exitWait):
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case werr = <-waited:
		case <-time.After(exitWait):
			_ = s.cmd.Process.Kill()
			werr = <-waited
		}
	}
	if res == nil || s.cmd.ProcessState == nil {
		return nil
	}
	res.ExitCode = s.cmd.ProcessState.ExitCode()
	res.CPUUser = s.cmd.ProcessState.UserTime()
	res.CPUSys = s.cmd.ProcessState.SystemTime()
	if rss := peakRSSKiB(s.cmd.ProcessState); rss > res.PeakRSSKiB {
		res.PeakRSSKiB = rss
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return werr
	}
	return nil
}

func (s *session) cleanup() {
	if s.home != "" {
		_ = os.RemoveAll(s.home)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}
