package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// The chain. A record body is the JSON object the Logger encodes; the line
// written is
//
//	body[:len-1] + `,"prev_hash":"P","hash":"H"}`
//
// where P is the previous record's H ("" at the start of a chain) and H is
// the hex SHA-256 of body[:len-1] + `,"prev_hash":"P"}`, that is of the
// line without its last 75 bytes (`,"hash":"` + 64 hex digits + `"}`) and
// with a closing brace. Verifying needs no key and no JSON canonical form.

const (
	hashPrefix = `,"hash":"`
	hashSuffix = len(hashPrefix) + 64 + len(`"}`)
)

// chainLine returns the line (without newline) chaining body to prev, and
// its hash.
func chainLine(body []byte, prev string) (line []byte, hash string) {
	line = make([]byte, 0, len(body)+len(prev)+16+hashSuffix)
	line = appendChained(line, body, prev)
	return line, string(lineHash(line))
}

// appendChained appends to dst the line (without newline) chaining body
// to prev; lineHash(the line) is its hash.
func appendChained[S string | []byte](dst, body []byte, prev S) []byte {
	start := len(dst)
	dst = append(dst, body[:len(body)-1]...)
	dst = append(dst, `,"prev_hash":"`...)
	dst = append(dst, prev...)
	dst = append(dst, `"}`...)
	sum := sha256.Sum256(dst[start:])
	dst = dst[:len(dst)-1]
	dst = append(dst, hashPrefix...)
	dst = hex.AppendEncode(dst, sum[:])
	return append(dst, `"}`...)
}

// lineHash is the hash a chained line ends with.
func lineHash(line []byte) []byte {
	return line[len(line)-hashSuffix+len(hashPrefix) : len(line)-2]
}

// chained is what verification reads from a line.
type chained struct {
	PrevHash *string         `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Kind     string          `json:"kind"`
	Reasons  json.RawMessage `json:"reasons"`
}

// checkLine verifies one line's own hash and returns its fields.
func checkLine(line []byte) (chained, error) {
	var c chained
	if len(line) < hashSuffix+2 || !bytes.HasPrefix(line[len(line)-hashSuffix:], []byte(hashPrefix)) ||
		!bytes.HasSuffix(line, []byte(`"}`)) {
		return c, errors.New("not a chained record (no hash at its end)")
	}
	if err := json.Unmarshal(line, &c); err != nil {
		return c, fmt.Errorf("not a JSON record: %v", err)
	}
	if c.PrevHash == nil {
		return c, errors.New("not a chained record (no prev_hash)")
	}
	want := c.Hash
	body := make([]byte, 0, len(line)-hashSuffix+1)
	body = append(append(body, line[:len(line)-hashSuffix]...), '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != want {
		return c, errors.New("record hash does not match its content (the record was changed)")
	}
	return c, nil
}

// ChainError is the first broken link verification found.
type ChainError struct {
	File   string
	Line   int
	Reason string
}

func (e *ChainError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// VerifyResult summarises a verified chain.
type VerifyResult struct {
	Records  int
	LastHash string // record it elsewhere to detect a later truncation
}

// Verify checks the hash chain through files, oldest first (audit.log.2,
// audit.log.1, audit.log): each record's own hash, each link to the
// record before it, and that every file ends with a complete line. The
// first record must be a genesis record (a new log, or a rotation whose
// predecessor may have been removed: its prev_hash is taken on trust). It returns a *ChainError for the first broken link, or an
// error reading a file.
func Verify(files []string) (VerifyResult, error) {
	var res VerifyResult
	started := false
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return res, err
		}
		err = verifyFile(name, f, &res, &started, true)
		f.Close()
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// VerifyReader is Verify over one stream named name, which may be a
// segment cut from a log: its first record is taken on trust.
func VerifyReader(name string, r io.Reader) (VerifyResult, error) {
	var res VerifyResult
	started := false
	err := verifyFile(name, r, &res, &started, false)
	return res, err
}

func verifyFile(name string, r io.Reader, res *VerifyResult, started *bool, fromGenesis bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				return &ChainError{name, n, "truncated record (the file ends without a newline: a torn write or a cut tail)"}
			}
			return nil
		}
		if err != nil {
			return err
		}
		line = line[:len(line)-1]
		c, cerr := checkLine(line)
		if cerr != nil {
			return &ChainError{name, n, cerr.Error()}
		}
		if fromGenesis && !*started && c.Kind != KindGenesis {
			return &ChainError{name, n, "the log does not start at a genesis record: its first records were removed, or this is not the oldest file (name rotated files first)"}
		}
		if *started && *c.PrevHash != res.LastHash {
			reason := "prev_hash does not match the record before it (a record was deleted, inserted or reordered)"
			if c.Kind == KindGenesis && *c.PrevHash == "" {
				reason = fmt.Sprintf("the chain restarts here: %s", c.Reasons)
			}
			return &ChainError{name, n, reason}
		}
		*started = true
		res.Records++
		res.LastHash = c.Hash
	}
}
