package plugin

import (
	"context"
	"io/fs"
	"net"
	"net/http"
	"time"
)

// Closed is a door that refuses everything with Err: the network, files
// and commands of a host built without guards, or of one that builds
// plugins only to check their settings.
type Closed struct{ Err error }

var (
	_ Network  = Closed{}
	_ Files    = Closed{}
	_ Commands = Closed{}
)

// HTTPClient returns a client whose every dial fails with Err.
func (c Closed) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:       nil,
		DialContext: c.DialContext,
	}}
}

func (c Closed) DialContext(context.Context, string, string) (net.Conn, error) { return nil, c.Err }
func (c Closed) Abs(string, string) (string, error)                            { return "", c.Err }
func (c Closed) Check(context.Context, string, Op) error                       { return c.Err }
func (c Closed) Canonical(context.Context, string, Op) (string, error)         { return "", c.Err }
func (c Closed) Stat(context.Context, string) (fs.FileInfo, error)             { return nil, c.Err }
func (c Closed) ReadFile(context.Context, string, int64) ([]byte, error)       { return nil, c.Err }
func (c Closed) WriteFile(context.Context, string, []byte) error               { return c.Err }
func (c Closed) ReadDir(context.Context, string) ([]fs.DirEntry, error)        { return nil, c.Err }
func (c Closed) MkdirAll(context.Context, string) error                        { return c.Err }
func (c Closed) Remove(context.Context, string) error                          { return c.Err }
func (c Closed) Exec(context.Context, []string, ExecOptions) (*ExecResult, error) {
	return nil, c.Err
}
