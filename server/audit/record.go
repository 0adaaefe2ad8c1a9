package audit

import (
	"crypto/rand"
	"fmt"
	"time"
)

// Kinds of decision.
const (
	KindToolCall   = "tool_call"
	KindNetwork    = "network"
	KindFilesystem = "filesystem"
	KindCommand    = "command"
	KindRateLimit  = "rate_limit"
	KindValidation = "validation"
	// KindToolResult follows an allowed call: how it ended.
	KindToolResult = "tool_result"
	// KindSummary counts refusals whose own records were coalesced.
	KindSummary = "audit_summary"
)

// Statuses of a finished call (KindToolResult).
const (
	StatusOK        = "ok"
	StatusToolError = "tool_error"
	StatusTimeout   = "timeout"
	StatusCancelled = "cancelled"
	StatusDenied    = "denied"
)

// Results of a decision.
const (
	ResultAllow = "allow"
	ResultDeny  = "deny"
	ResultError = "error"
)

// Record is one decision.
type Record struct {
	Timestamp        time.Time         `json:"timestamp"`
	DecisionID       string            `json:"decision_id"`
	ParentDecisionID string            `json:"parent_decision_id,omitempty"`
	SessionID        string            `json:"session_id,omitempty"`
	RequestID        string            `json:"request_id,omitempty"`
	Path             string            `json:"path,omitempty"`
	Kind             string            `json:"kind"`
	Tool             string            `json:"tool,omitempty"`
	Client           *Client           `json:"client,omitempty"`
	Result           string            `json:"result"`
	Status           string            `json:"status,omitempty"`
	Reasons          []string          `json:"reasons,omitempty"`
	Input            any               `json:"input,omitempty"`
	DurationNS       int64             `json:"duration_ns"`
	Labels           map[string]string `json:"labels,omitempty"`
}

// Client is the MCP client behind a decision.
type Client struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// NewID returns a random version 4 UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
