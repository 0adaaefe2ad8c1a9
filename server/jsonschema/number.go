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
		return number{f: f, lit: string(n)}, true
	case float64:
		return number{f: n}, true
	case float32:
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
	if len(n.lit) > 128 {
		return nil, false
	}
	if _, exp, ok := splitLiteral(n.lit); !ok || exp < -1000 || exp > 1000 {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(n.lit)
	return r, ok
}

// cmp compares a and b: exactly when both have a cheap exact form,
// otherwise as float64. Rounding to float64 keeps order, so the float
// comparison is right whenever it finds the two different.
func cmpNumber(a, b number) int {
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	ra, oka := a.rat()
	rb, okb := b.rat()
	if oka && okb {
		return ra.Cmp(rb)
	}
	return 0
}

// isInteger reports whether n has no fractional part ("1.0" and "1e2"
// are integers, as JSON Schema says).
func (n number) isInteger() bool {
	if n.lit == "" {
		return !math.IsInf(n.f, 0) && n.f == math.Trunc(n.f)
	}
	scale, exp, ok := splitLiteral(n.lit)
	return ok && (scale == zeroScale || exp+scale >= 0)
}

// zeroScale is the scale splitLiteral reports for a zero mantissa.
const zeroScale = 1 << 31

// splitLiteral reads a JSON number literal as digits × 10^(scale+exp):
// exp is its exponent, clamped to ±1<<30, and scale is the trailing
// zeros of its mantissa's digits less its fractional digits (zeroScale
// when the mantissa is zero).
func splitLiteral(s string) (scale, exp int, ok bool) {
	s = strings.TrimPrefix(s, "-")
	mant, e, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		e = strings.TrimPrefix(e, "+")
		neg := strings.HasPrefix(e, "-")
		digits := strings.TrimPrefix(e, "-")
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return 0, 0, false
		}
		digits = strings.TrimLeft(digits, "0")
		if len(digits) > 9 {
			exp = 1 << 30
		} else if digits != "" {
			exp, _ = strconv.Atoi(digits)
		}
		if neg {
			exp = -exp
		}
	}
	whole, fr, _ := strings.Cut(mant, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(fr, "0123456789") != "" {
		return 0, 0, false
	}
	digits := whole + fr
	if strings.Trim(digits, "0") == "" {
		return zeroScale, exp, true
	}
	return len(digits) - len(strings.TrimRight(digits, "0")) - len(fr), exp, true
}

// isMultiple reports whether v is a multiple of m (m > 0). When neither
// an exact nor a float64 answer can be trusted, the answer is no: the
// value is refused rather than let through unchecked.
func isMultiple(v, m number) bool {
	rv, okv := v.rat()
	rm, okm := m.rat()
	if okv && okm && rm.Sign() != 0 {
		return new(big.Rat).Quo(rv, rm).IsInt()
	}
	if math.IsInf(v.f, 0) || math.IsNaN(v.f) || m.f == 0 {
		return false
	}
	q := v.f / m.f
	return !math.IsInf(q, 0) && q == math.Trunc(q)
}
