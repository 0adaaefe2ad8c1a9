package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// auditCmd runs `mcp-secure audit verify FILE...`: it checks the hash
// chain through the files, oldest first, and exits 0 when it is intact, 1
// at the first broken link (named by file and line), 2 on bad usage or an
// unreadable file.
func auditCmd(args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "--help", "-help", "help":
			_, err := io.WriteString(stdout, "Usage: mcp-secure audit verify FILE...\n\nRun mcp-secure audit verify --help for its flags.\n")
			return err
		}
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageErr("audit: want `audit verify FILE...` (see mcp-secure audit --help)")
	}
	c := newSubcommand("audit verify", "FILE...", `
Checks the audit log's hash chain through the files, oldest first
(audit.log.2 audit.log.1 audit.log). Exit 0 intact, 1 broken (naming file
and line), 2 on bad usage or an unreadable file. Keep the last hash it
prints elsewhere to detect records cut off at the end.`, stdout)
	files, err := c.parse(args[1:], 1, -1)
	if err != nil {
		return err
	}
	res, err := audit.Verify(files)
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		fmt.Fprintf(stdout, "BROKEN at %s:%d: %s\n", ce.File, ce.Line, ce.Reason)
		return &exitErr{code: exitError, err: fmt.Errorf("audit chain broken at %s:%d", ce.File, ce.Line)}
	}
	if err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("audit verify: %w", err)}
	}
	_, err = fmt.Fprintf(stdout, "ok: %d records in %d files form one chain; last hash %s\n", res.Records, len(files), res.LastHash)
	return err
}
