package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Rollback protection: with Config.RevisionOrder set, a downloaded
// bundle older than the last one activated is refused, so a bundle
// service (or whoever replays its old answers) cannot take the fleet
// back to an older, validly signed policy. Both orders compare signed
// values: the manifest (and so its revision) is among the files the
// signature covers, and iat is a claim of the signature itself.
//
// The last activated bundle's revision and iat (the floor: see
// Source.Activated) are persisted in StateDir next to the bundle, and read
// again at Open, so a restart keeps the floor even when the persisted
// bundle cannot be used. The first bundle ever activated sets the floor
// (trust on first use). A bundle equal to the floor (the same revision
// served again) is accepted.

// Revision orders of Config.RevisionOrder.
const (
	// OrderNone accepts any validly signed bundle (OPA's behaviour).
	OrderNone = ""
	// OrderNatural compares manifest revisions piecewise: runs of digits
	// as numbers, the rest byte by byte ("v2" < "v10",
	// "2026.12.02-9" < "2026.12.02-10").
	OrderNatural = "natural"
	// OrderLexical compares manifest revisions byte by byte (timestamps
	// such as 20261202T0700Z, zero-padded counters).
	OrderLexical = "lexical"
	// OrderIssuedAt compares the iat claim of the signature (seconds
	// since the epoch; `opa build --claims-file` or `opa sign
	// --claims-file` adds it). A signature without iat is refused.
	OrderIssuedAt = "iat"
)

// ErrRollback is a bundle older than the one accepted last.
var ErrRollback = errors.New("bundle rollback")

// floor is what the next bundle is compared with.
type floor struct {
	Revision string `json:"revision"`
	IssuedAt int64  `json:"iat,omitempty"`
}

func floorOf(s Snapshot) floor { return floor{Revision: s.Revision, IssuedAt: s.IssuedAt} }

// validOrder checks Config.RevisionOrder.
func validOrder(order string) error {
	switch order {
	case OrderNone, OrderNatural, OrderLexical, OrderIssuedAt:
		return nil
	}
	return fmt.Errorf("%w: revision order %q (want natural, lexical or iat)", ErrConfig, order)
}

// notOlder refuses s when it is older than f under order, or has no
// value to order by (no revision; no iat). With no floor (nothing
// accepted yet) any bundle that has one passes.
func notOlder(order string, f *floor, s Snapshot) error {
	switch {
	case order == OrderNone:
		return nil
	case order == OrderIssuedAt && s.IssuedAt == 0:
		return fmt.Errorf("%w: revision order iat: the signature carries no iat claim", ErrRollback)
	case order != OrderIssuedAt && s.Revision == "":
		return fmt.Errorf("%w: revision order %s: the bundle has no revision", ErrRollback, order)
	case f == nil:
		return nil
	}
	if order == OrderIssuedAt {
		if s.IssuedAt < f.IssuedAt {
			return fmt.Errorf("%w: signed at %d (revision %q), before %d of the last accepted bundle (revision %q)",
				ErrRollback, s.IssuedAt, s.Revision, f.IssuedAt, f.Revision)
		}
		return nil
	}
	var c int
	if order == OrderLexical {
		c = strings.Compare(s.Revision, f.Revision)
	} else {
		c = compareNatural(s.Revision, f.Revision)
	}
	if c < 0 {
		return fmt.Errorf("%w: revision %q is older than %q of the last accepted bundle (order %s)", ErrRollback, s.Revision, f.Revision, order)
	}
	return nil
}

// compareNatural compares a and b by runs: two runs of digits by their
// numeric value (leading zeros ignored, then the shorter run first),
// anything else byte by byte; a string that is a prefix of the other
// comes first.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		ra, rb := run(a), run(b)
		a, b = a[len(ra):], b[len(rb):]
		var c int
		if isDigit(ra[0]) && isDigit(rb[0]) {
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if c = len(na) - len(nb); c == 0 {
				c = strings.Compare(na, nb)
			}
			if c == 0 {
				c = len(ra) - len(rb)
			}
		} else {
			c = strings.Compare(ra, rb)
		}
		if c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

// run is the leading run of s: digits, or no digits.
func run(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// issuedAt is the iat claim of b's signature; 0 when it has none. The
// signature was verified before this is read.
func issuedAt(b *opabundle.Bundle) int64 {
	if len(b.Signatures.Signatures) != 1 {
		return 0
	}
	parts := strings.Split(b.Signatures.Signatures[0], ".")
	if len(parts) != 3 {
		return 0
	}
	var claims struct {
		IssuedAt json.Number `json:"iat"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return 0
	}
	n, err := claims.IssuedAt.Int64()
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// persistedFloor is the file of the floor in StateDir.
const persistedFloor = "bundle.floor.json"

func persistFloor(dir string, f floor) error {
	if dir == "" {
		return nil
	}
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := stateDir(dir); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, persistedFloor), raw)
}

// loadFloor reads the persisted floor; nil when there is none.
func loadFloor(dir string) (*floor, error) {
	if dir == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, persistedFloor))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("persisted revision floor: %w", err)
	}
	var f floor
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("persisted revision floor: %w", err)
	}
	return &f, nil
}
