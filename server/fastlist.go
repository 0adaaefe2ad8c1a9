package server

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// The fast lane's tools/list. On the SDK path each tools/list encodes
// every tool again, schemas included, and asks the policy about each
// (listFilter). What the answer holds depends only on the tool table (a
// published table is never changed: a change of a plugin's tools
// publishes another), the policy snapshot, the caller's identity (fixed
// at initialize) and whether the session's protocol predates the cache
// hints (conn.polish drops them). The fast lane keeps the encoded answer
// for the last such view and writes it again while the view lasts.
//
// It leaves to the SDK what it cannot key that way: a tool whose
// definition is pinned (its state is an input of each decision), a
// decider that does not tell its snapshots apart, a table longer than a
// page of the SDK's list (it pages before listFilter filters), and any
// params but _meta (a cursor).

// listAnswer is the encoded tools/list result of one view.
type listAnswer struct {
	tools    *map[string]*registeredTool
	gen      uint64
	client   plugin.Client
	protocol string
	bare     bool // without ttlMs and cacheScope
	// result is nil when the SDK answers this view.
	result []byte
	names  []string // the tools listed, sorted
}

func (a *listAnswer) of(tools *map[string]*registeredTool, gen uint64, id identity, bare bool) bool {
	return a != nil && a.tools == tools && a.gen == gen && a.client == id.client && a.protocol == id.protocol && a.bare == bare
}

// list returns the tools/list result for ss, as the SDK path would
// answer it now, the names it lists and to whom; ok is false when the
// SDK must answer.
func (f *fastLane) list(c *stdioConn, ss *mcp.ServerSession) (a *listAnswer, id identity, ok bool) {
	p := f.pipe
	id, ok = p.sessions.initializedIdentity(ss)
	if !ok {
		return nil, id, false
	}
	c.fmu.Lock()
	written := c.protocol != "" // the initialize answer, which polish reads
	bare := c.protocol < statelessProtocol
	c.fmu.Unlock()
	gen := p.generation()
	if gen == 0 || !written {
		return nil, id, false
	}
	tools := p.tools.m.Load()
	if a := f.lists.Load(); a.of(tools, gen, id, bare) {
		return a, id, a.result != nil
	}
	ctx := p.pin(f.ctx)
	if p.generationFor(ctx) != gen {
		return nil, id, false // a reload is under way
	}
	a = &listAnswer{tools: tools, gen: gen, client: id.client, protocol: id.protocol, bare: bare}
	a.result, a.names = p.encodeList(ctx, tools, id, bare)
	f.lists.Store(a)
	return a, id, a.result != nil
}

// encodeList is the tools/list result the SDK path gives id for the
// tools of table, under the snapshot ctx pins: the SDK's list (sorted by
// name, one page), less what listFilter leaves out, with its cache
// hints. It returns nil when the answer could change with nothing here
// changing.
func (p *pipeline) encodeList(ctx context.Context, table *map[string]*registeredTool, id identity, bare bool) ([]byte, []string) {
	var tools map[string]*registeredTool
	if table != nil {
		tools = *table
	}
	if len(tools) > mcp.DefaultPageSize {
		return nil, nil
	}
	res := &mcp.ListToolsResult{Tools: []*mcp.Tool{}}
	var names []string
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		rt := tools[name]
		if rt.Definition != nil {
			return nil, nil
		}
		if ok, _ := p.permitted(ctx, id, name); ok {
			res.Tools = append(res.Tools, mcpTool(rt.Tool))
			names = append(names, name)
		}
	}
	res.CacheScope, res.TTLMs = "private", 0
	// As the SDK's jsonrpc2 encodes a result: no HTML escaping.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, nil
	}
	data := bytes.TrimRight(buf.Bytes(), "\n")
	if bare {
		data = withoutCacheFields(data)
	}
	return data, names
}

// listParams reports whether tools/list params are of the plain shape:
// absent, or an object with at most a "_meta" object without the
// protocol's own keys. A cursor, or anything else, goes to the SDK.
func listParams(params []byte) bool {
	if len(params) == 0 {
		return true
	}
	mp := memberPool.Get().(*[]member)
	defer putMembers(mp)
	ms, _, ok := members(params, *mp)
	if !ok || len(ms) > 1 {
		return false
	}
	for _, m := range ms {
		if m.escaped || string(m.key) != "_meta" || m.value[0] != '{' {
			return false
		}
		var meta mcp.Meta
		if !simpleMeta(m.value, &meta) && json.Unmarshal(m.value, &meta) != nil {
			return false
		}
		for k := range meta {
			if strings.HasPrefix(k, protocolMeta) {
				return false
			}
		}
	}
	return true
}
