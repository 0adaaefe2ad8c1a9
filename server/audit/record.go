package audit

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Kinds of record.
const (
	KindToolCall   = "tool_call"
	KindNetwork    = "network"
	KindFilesystem = "filesystem"
	KindCommand    = "command"
	KindRateLimit  = "rate_limit"
	KindValidation = "validation"
	// KindUpstream is the start of an upstream MCP server's process.
	KindUpstream = "upstream"
	// KindPlugin is an external plugin the server leaves out at
	// start-up, with why (result deny).
	KindPlugin = "plugin"
	// KindToolResult follows an allowed call when it finishes, linked by
	// its decision id, with a Status and the call's duration.
	KindToolResult = "tool_result"
	// KindSummary stands for Count identical records coalesced over a
	// window of WindowNS nanoseconds.
	KindSummary = "audit_summary"
	// KindGenesis starts a hash chain: the first record of a new file, of
	// a rotated file (its prev_hash is the last hash of the file before),
	// or after an unreadable tail.
	KindGenesis = "audit_genesis"
)

// Results of a decision.
const (
	ResultAllow = "allow"
	ResultDeny  = "deny"
	ResultError = "error"
)

// Statuses of a finished call (KindToolResult).
const (
	StatusOK        = "ok"
	StatusToolError = "tool_error"
	StatusTimeout   = "timeout"
	StatusCancelled = "cancelled"
	StatusDenied    = "denied" // a guard refused something the tool tried
)

// Record is one decision or outcome. The Logger redacts every string a
// client could have chosen (Tool, Client, Reasons, Error, RequestID,
// SessionID, Input keys and values), caps large values, applies mask
// rules and chains the record to the one before it.
type Record struct {
	Timestamp        time.Time `json:"timestamp"`
	DecisionID       string    `json:"decision_id"`
	ParentDecisionID string    `json:"parent_decision_id,omitempty"`
	// SessionID tells the sessions writing to one log apart.
	SessionID  string   `json:"session_id,omitempty"`
	RequestID  string   `json:"request_id,omitempty"`
	Path       string   `json:"path,omitempty"`
	Kind       string   `json:"kind"`
	Tool       string   `json:"tool,omitempty"`
	Client     *Client  `json:"client,omitempty"`
	Result     string   `json:"result,omitempty"`
	Status     string   `json:"status,omitempty"`
	Reasons    []string `json:"reasons,omitempty"`
	Error      string   `json:"error,omitempty"`
	Input      any      `json:"input,omitempty"`
	DurationNS int64    `json:"duration_ns"`
	// Count and WindowNS describe a KindSummary record.
	Count    int64             `json:"count,omitempty"`
	WindowNS int64             `json:"window_ns,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// TraceID and SpanID tie the record to its OpenTelemetry span (hex),
	// when tracing is on. TraceOrigin says who chose the trace id:
	// TraceOriginServer, or TraceOriginClient when the server continued a
	// client's traceparent.
	TraceID     string `json:"trace_id,omitempty"`
	SpanID      string `json:"span_id,omitempty"`
	TraceOrigin string `json:"trace_origin,omitempty"`
	// DryRun is the dry-run policy's would-be decision (never enforced).
	DryRun *DryRun `json:"dry_run,omitempty"`
	// Policy describes a KindPolicyReload record.
	Policy *PolicyChange `json:"policy,omitempty"`
	// Revision, when not nil, is the bundle revision of the policy that
	// decided (which may be ""): the record's LabelBundleRevision,
	// whichever revision is in force when the record is written (see
	// Logger.SetLabel). It is not written itself.
	Revision *string `json:"-"`
}

// Client is the MCP client behind a decision.
type Client struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// NewID returns a random version 4 UUID.
func NewID() string {
	var b [16]byte
	ids.read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:16])
	return string(out[:])
}

// ids hands out the random bytes of ids from a buffer that crypto/rand
// fills 32 ids at a time: a read of the system's random source costs a
// system call, more than the rest of an id. Each byte is handed out once.
var ids randPool

type randPool struct {
	mu  sync.Mutex
	buf [32 * 16]byte
	off int
}

func (p *randPool) read(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off == 0 || p.off+len(b) > len(p.buf) {
		_, _ = rand.Read(p.buf[:]) // crypto/rand.Read never fails
		p.off = 0
	}
	n := copy(b, p.buf[p.off:])
	clear(p.buf[p.off : p.off+n])
	p.off += n
}
