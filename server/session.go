package server

import (
	"context"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// statelessProtocol is the first protocol version without initialize:
// from it on, every request carries the client's identity in its _meta.
const statelessProtocol = "2026-07-28"

// identity is who the policy is told a call comes from.
type identity struct {
	session  string // our id for the session, in every audit record
	client   plugin.Client
	protocol string // always a version the server supports, or ""
}

// sessions binds client identity to the session that declared it. A
// session that began with initialize keeps the client info and protocol
// version of its handshake for its whole life: a later request's _meta
// cannot rename the client or change its version. Only the stateless
// protocol, which has no handshake, takes identity from each request
// (where the SDK has already checked the version is supported).
//
// Client identity is self-asserted in every case: a label for rules, not
// authentication.
type sessions struct {
	mu   sync.Mutex
	byID map[*mcp.ServerSession]*sessionState
}

type sessionState struct {
	id          string
	initialized bool // the session began with initialize
	client      plugin.Client
	protocol    string
	// listed are the tools of its last tools/list answer (hasListed:
	// it had one), to tell whether a policy reload changed them.
	listed    []string
	listedTo  identity
	hasListed bool
}

// state returns the session's state, creating it on first sight.
func (s *sessions) state(ss *mcp.ServerSession) *sessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[*mcp.ServerSession]*sessionState{}
	}
	st, ok := s.byID[ss]
	if !ok {
		st = &sessionState{id: audit.NewID()}
		s.byID[ss] = st
	}
	return st
}

// middleware records the identity a session declares in initialize.
func (s *sessions) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if method != "initialize" || err != nil {
			return res, err
		}
		ss, ok := req.GetSession().(*mcp.ServerSession)
		if !ok || ss == nil {
			return res, err
		}
		params := ss.InitializeParams() // the first initialize: the SDK refuses another
		if params == nil {
			return res, err
		}
		st := s.state(ss)
		s.mu.Lock()
		defer s.mu.Unlock()
		if st.initialized {
			return res, err // the SDK refuses a second initialize
		}
		st.initialized = true
		if c := params.ClientInfo; c != nil {
			st.client = plugin.Client{Name: c.Name, Version: c.Version}
		}
		if r, ok := res.(*mcp.InitializeResult); ok {
			st.protocol = supported(r.ProtocolVersion)
		}
		return res, err
	}
}

// request is what identify reads of a request.
type request interface {
	GetSession() mcp.Session
	ClientInfo() *mcp.Implementation
	ProtocolVersion() string
}

// identify returns who a request comes from.
func (s *sessions) identify(req request) identity {
	ss, _ := req.GetSession().(*mcp.ServerSession)
	if ss == nil {
		return identity{}
	}
	st := s.state(ss)
	s.mu.Lock()
	id := identity{session: st.id, client: st.client, protocol: st.protocol}
	initialized := st.initialized
	s.mu.Unlock()
	if initialized {
		return id
	}
	// The stateless protocol: identity travels with the request.
	id.client = plugin.Client{}
	if c := req.ClientInfo(); c != nil {
		id.client = plugin.Client{Name: c.Name, Version: c.Version}
	}
	id.protocol = ""
	if v := req.ProtocolVersion(); v >= statelessProtocol {
		id.protocol = supported(v)
	}
	return id
}

// initializedIdentity is who requests of ss come from, when ss began
// with initialize (its identity is then fixed); ok is false otherwise.
func (s *sessions) initializedIdentity(ss *mcp.ServerSession) (id identity, ok bool) {
	st := s.state(ss)
	s.mu.Lock()
	defer s.mu.Unlock()
	return identity{session: st.id, client: st.client, protocol: st.protocol}, st.initialized
}

// supported returns v if the server speaks it, else "".
func supported(v string) string {
	if slices.Contains(mcp.SupportedProtocolVersions(), v) {
		return v
	}
	return ""
}
