// Command hash is an example external plugin for mcp-secure, in Go: it
// hashes a text, or a file the policy lets it read.
//
// Per call (the default) it reads one request on stdin and writes one
// answer on stdout; with --persistent it serves a request a line until
// its input ends (mode: persistent in the manifest).
//
// Build it next to its manifest: go build -o hash .
package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
)

type request struct {
	ID        *uint64 `json:"id"` // persistent mode: copied into the answer
	Tool      string  `json:"tool"`
	Arguments struct {
		Text      string `json:"text"`
		Path      string `json:"path"`
		Algorithm string `json:"algorithm"`
	} `json:"arguments"`
}

type content struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type response struct {
	ID      *uint64   `json:"id,omitempty"`
	Content []content `json:"content"`
	IsError bool      `json:"isError"`
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if len(os.Args) > 1 && os.Args[1] == "--persistent" {
		in := bufio.NewReader(os.Stdin)
		for {
			line, err := in.ReadBytes('\n')
			if err != nil {
				return
			}
			write(out, serve(line))
			out.Flush()
		}
	}
	req, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the request:", err)
		os.Exit(1)
	}
	write(out, serve(req))
}

func write(w io.Writer, r response) {
	data, _ := json.Marshal(r)
	w.Write(append(data, '\n'))
}

func fail(format string, args ...any) response {
	return response{Content: []content{{"text", fmt.Sprintf(format, args...)}}, IsError: true}
}

func serve(raw []byte) response {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		return fail("bad request: %v", err)
	}
	r := answer(req)
	r.ID = req.ID
	return r
}

func answer(req request) response {
	var h hash.Hash
	switch req.Arguments.Algorithm {
	case "", "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return fail("unknown algorithm %q", req.Arguments.Algorithm)
	}
	switch req.Tool {
	case "hash_text":
		io.WriteString(h, req.Arguments.Text)
	case "hash_file":
		f, err := os.Open(req.Arguments.Path)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return fail("%v", err)
		}
	default:
		return fail("unknown tool %q", req.Tool)
	}
	return response{Content: []content{{"text", hex.EncodeToString(h.Sum(nil))}}}
}
