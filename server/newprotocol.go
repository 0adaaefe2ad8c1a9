package server

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// tools/call of the 2026-07-28 protocol in the fast lane. A client of
// that protocol (the Go SDK's, which opens with server/discover instead
// of initialize) sends its protocol version, client info and
// capabilities in the _meta of every request. The SDK then checks them
// (newProtocolCall below does the same checks through the SDK's own
// decoders, and leaves anything it is unsure of to the SDK), runs the
// call with the request's log level (absent: no log messages), and
// signs the result with the server's info. The fast
// lane takes such a call only in the shape it answers exactly as the
// SDK would.

// newProtocolCall reports whether the protocol keys of a tools/call's
// _meta (m, raw as written) are those of a 2026-07-28 request the SDK
// accepts and the fast lane answers as it does: a supported version, the
// client's capabilities and, if present, its info, each decoding as the
// SDK decodes them; no log level or other protocol key.
func newProtocolCall(raw []byte, m mcp.Meta, p *mcp.CallToolParamsRaw) bool {
	// supported is the SDK's list, which the server does not narrow
	// (New sets no ServerOptions.SupportedProtocolVersions).
	v, ok := m[mcp.MetaKeyProtocolVersion].(string)
	if !ok || v < statelessProtocol || supported(v) == "" {
		return false
	}
	for k := range m {
		if strings.HasPrefix(k, protocolMeta) && k != mcp.MetaKeyProtocolVersion &&
			k != mcp.MetaKeyClientInfo && k != mcp.MetaKeyClientCapabilities {
			return false // a log level, or a key the fast lane does not know
		}
	}
	if _, ok := m[mcp.MetaKeyClientCapabilities]; !ok {
		return false
	}
	_, hasInfo := m[mcp.MetaKeyClientInfo]
	// A client sends the same info and capabilities with every request:
	// the last pair the SDK's decoders took is kept, as written, with the
	// info decoded. The info goes into m decoded, so that reading it (who
	// the call is from) does not decode it again.
	key, keyed := protocolMetaKey(raw)
	if keyed {
		if last := lastProtocolMeta.Load(); last != nil && last.key == key {
			if hasInfo {
				m[mcp.MetaKeyClientInfo] = last.info
			}
			return true
		}
	}
	// Without a session, the SDK's accessors answer nil when the value
	// does not decode (with one, they fall back to the handshake's).
	r := &mcp.CallToolRequest{Params: p}
	if r.ClientCapabilities() == nil {
		return false
	}
	var info *mcp.Implementation
	if hasInfo {
		if info = r.ClientInfo(); info == nil {
			return false
		}
		m[mcp.MetaKeyClientInfo] = info
	}
	if keyed {
		lastProtocolMeta.Store(&protocolMetaMemo{key: key, info: info})
	}
	return true
}

// protocolMetaMemo is the client info and capabilities, as written, of
// the last tools/call whose _meta newProtocolCall took, and the info
// decoded (nil when there was none). The info is shared by every call
// that sends the same bytes: it is read only (who the call is from is
// copied out of it), never written.
type protocolMetaMemo struct {
	key  string
	info *mcp.Implementation
}

var lastProtocolMeta atomic.Pointer[protocolMetaMemo]

// protocolMetaKey is the client info and capabilities of a _meta object
// as written; ok is false when they cannot be read plainly.
func protocolMetaKey(raw []byte) (key string, ok bool) {
	var buf [maxMembers]member
	ms, _, ok := members(raw, buf[:0])
	if !ok {
		return "", false
	}
	var info, caps []byte
	for _, mb := range ms {
		if mb.escaped {
			return "", false
		}
		switch string(mb.key) {
		case mcp.MetaKeyClientInfo:
			info = mb.value
		case mcp.MetaKeyClientCapabilities:
			caps = mb.value
		}
	}
	if caps == nil {
		return "", false
	}
	// A NUL cannot appear raw in JSON text: the two parts stay apart.
	return string(info) + "\x00" + string(caps), true
}

// quietLogKey marks the context of a call whose request named no log
// level: as the SDK does for such a 2026-07-28 request, log messages
// sent to the client with the call's context are dropped.
type quietLogKey struct{}

// quietLog reports whether ctx is such a call's.
func quietLog(ctx context.Context) bool {
	return ctx.Value(quietLogKey{}) != nil
}

// serverInfoMeta is the start of a result's _meta that names the server,
// as the SDK writes it: {"_meta":{"io.modelcontextprotocol/serverInfo":INFO},
type serverInfoMeta []byte

func newServerInfoMeta(impl *mcp.Implementation) serverInfoMeta {
	info, err := json.Marshal(impl)
	if err != nil {
		panic("server: encoding the server's info: " + err.Error())
	}
	b := append([]byte(`{"_meta":{"`+mcp.MetaKeyServerInfo+`":`), info...)
	return append(b, "},"...)
}

// appendNewProtocolResult appends res as the SDK answers a 2026-07-28
// tools/call: with the server's info in its _meta, unless it has one.
func (p *pipeline) appendNewProtocolResult(dst []byte, res *mcp.CallToolResult) []byte {
	if res == nil {
		res = errorResult("the call produced no result")
	}
	if len(res.Meta) == 0 {
		start := len(dst)
		dst = append(dst, p.serverInfoMeta...)
		body := len(dst)
		var ok bool
		if dst, ok = appendCallResult(dst, res); ok {
			// {"content":...} follows the _meta, without its brace.
			n := copy(dst[body:], dst[body+1:])
			return dst[:body+n]
		}
		dst = dst[:start]
	}
	r := *res
	r.Meta = maps.Clone(res.Meta)
	if r.Meta == nil {
		r.Meta = mcp.Meta{}
	}
	if _, ok := r.Meta[mcp.MetaKeyServerInfo]; !ok {
		r.Meta[mcp.MetaKeyServerInfo] = p.serverInfo
	}
	if r.Content == nil {
		r.Content = []mcp.Content{}
	}
	data, err := json.Marshal(&r)
	if err != nil {
		return p.appendNewProtocolResult(dst, errorResult("the result could not be encoded"))
	}
	return append(dst, data...)
}
