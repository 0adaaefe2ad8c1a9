package jsonschema

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// number is a JSON number: its float64 value and, when it came as
// text, its decimal literal (for exact comparisons).
type number struct {
	f   float64
	lit string
}

// numberOf returns v as a number when it is one of the Go types JSON and
// YAML decoders produce for numbers.
func numberOf(v any) (number, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil && !isRangeErr(err) {
			return number{}, false
		}
		if _, ok := parseDecimal(string(n)); !ok {
			return number{}, false // "NaN", "0x10", an exponent beyond reason
		}
		return number{f: f, lit: string(n)}, true
	case float64:
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return number{}, false
		}
		return number{f: n}, true
	case float32:
		if math.IsInf(float64(n), 0) || math.IsNaN(float64(n)) {
			return number{}, false
		}
		return number{f: float64(n)}, true
	case int:
		return number{f: float64(n), lit: strconv.Itoa(n)}, true
	case int8:
		return number{f: float64(n), lit: strconv.FormatInt(int64(n), 10)}, true
	case int16:
		return number{f: float64(n), lit: strconv.FormatInt(int64(n), 10)}, true
	case int32:
		return number{f: float64(n), lit: strconv.FormatInt(int64(n), 10)}, true
	case int64:
		return number{f: float64(n), lit: strconv.FormatInt(n, 10)}, true
	case uint:
		return number{f: float64(n), lit: strconv.FormatUint(uint64(n), 10)}, true
	case uint8:
		return number{f: float64(n), lit: strconv.FormatUint(uint64(n), 10)}, true
	case uint16:
		return number{f: float64(n), lit: strconv.FormatUint(uint64(n), 10)}, true
	case uint32:
		return number{f: float64(n), lit: strconv.FormatUint(uint64(n), 10)}, true
	case uint64:
		return number{f: float64(n), lit: strconv.FormatUint(n, 10)}, true
	}
	return number{}, false
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// String is the number as the schema or the value wrote it.
func (n number) String() string {
	if n.lit != "" {
		return n.lit
	}
	return strconv.FormatFloat(n.f, 'g', -1, 64)
}

// maxRatLiteral and maxRatExp bound the literals rat makes exact: their
// length, and the exponent of their decimal.
const (
	maxRatLiteral = 128
	maxRatExp     = 1000
)

// rat is n exactly, when that is cheap: a literal of bounded length and
// exponent (a value like 1e999999999 would otherwise cost a huge power
// of ten), or any finite float64.
func (n number) rat() (*big.Rat, bool) {
	if n.lit == "" {
		if math.IsInf(n.f, 0) || math.IsNaN(n.f) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(n.f), true
	}
	if len(n.lit) > maxRatLiteral {
		return nil, false
	}
	if d, ok := parseDecimal(n.lit); !ok || d.exp < -maxRatExp || d.exp > maxRatExp {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(n.lit)
	return r, ok
}

// decimal is a number as 0.digits × 10^exp, digits without leading or
// trailing zeros ("" for zero). Any literal of a bounded exponent has
// one, at a cost linear in its length, so comparisons are exact
// whatever the number of digits.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// maxExpDigits bounds the significant digits of a literal's exponent:
// a literal beyond it (1e1000000000000000000) is not taken as a number.
const maxExpDigits = 15

// parseDecimal reads a JSON number literal.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		d.neg, s = true, rest
	}
	mant, e := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, e = s[:i], s[i+1:]
		negExp := false
		if rest, ok := strings.CutPrefix(e, "-"); ok {
			negExp, e = true, rest
		} else {
			e = strings.TrimPrefix(e, "+")
		}
		if !allDigits(e) {
			return decimal{}, false
		}
		e = strings.TrimLeft(e, "0")
		if len(e) > maxExpDigits {
			return decimal{}, false
		}
		if e != "" {
			x, err := strconv.ParseInt(e, 10, 64)
			if err != nil {
				return decimal{}, false
			}
			d.exp = x
		}
		if negExp {
			d.exp = -d.exp
		}
	}
	whole, fr, hasDot := strings.Cut(mant, ".")
	if !allDigits(whole) || (hasDot && !allDigits(fr)) {
		return decimal{}, false
	}
	all := whole + fr
	lead := len(all) - len(strings.TrimLeft(all, "0"))
	digits := strings.TrimRight(all[lead:], "0")
	if digits == "" {
		return decimal{}, true // zero, of either sign
	}
	d.digits = digits
	d.exp += int64(len(whole)) - int64(lead)
	return d, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decimal is n as a decimal: its literal, or the shortest decimal that
// reads back as its float64.
func (n number) decimal() (decimal, bool) {
	if n.lit != "" {
		return parseDecimal(n.lit)
	}
	if math.IsInf(n.f, 0) || math.IsNaN(n.f) {
		return decimal{}, false
	}
	return parseDecimal(strconv.FormatFloat(n.f, 'e', -1, 64))
}

func (d decimal) sign() int {
	switch {
	case d.digits == "":
		return 0
	case d.neg:
		return -1
	}
	return 1
}

func cmpDecimal(a, b decimal) int {
	sa, sb := a.sign(), b.sign()
	if sa != sb || sa == 0 {
		return cmpInt(sa, sb)
	}
	c := cmpInt(a.exp, b.exp)
	if c == 0 {
		c = strings.Compare(a.digits, b.digits)
	}
	return sa * c
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpNumber compares a and b exactly. Rounding to float64 keeps order,
// so the float comparison is right whenever it finds the two different;
// otherwise their decimals decide.
func cmpNumber(a, b number) int {
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	da, _ := a.decimal()
	db, _ := b.decimal()
	return cmpDecimal(da, db)
}

// isInteger reports whether n has no fractional part ("1.0" and "1e2"
// are integers, as JSON Schema says).
func (n number) isInteger() bool {
	d, ok := n.decimal()
	return ok && (d.digits == "" || d.exp >= int64(len(d.digits)))
}

// isMultiple reports whether v is a multiple of m (m > 0). When no
// exact answer is cheap, the answer is no: the value is refused rather
// than let through unchecked (a float64 quotient of a long literal is
// an integer whatever its last digits).
func isMultiple(v, m number) bool {
	rv, okv := v.rat()
	rm, okm := m.rat()
	if okv && okm && rm.Sign() != 0 {
		return new(big.Rat).Quo(rv, rm).IsInt()
	}
	return false
}
