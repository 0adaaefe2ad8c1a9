package jsonschema

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// maxPattern bounds the length of a pattern in a schema ("pattern" and
// the keys of "patternProperties"), and maxPatternInsts the size of the
// program one compiles to, as regexp/syntax counts instructions with
// every counted repetition written out. Schemas come from manifests
// and upstream servers: without a bound, a few KiB of "a{1000}a{1000}…"
// cost a second and 150 MB to compile (RE2 stops only at 3 million
// instructions). maxSchemaPatternInsts bounds the patterns of one
// schema in all, so that many of them cannot add up to the same.
const (
	maxPattern            = 4096
	maxPatternInsts       = 1 << 16
	maxSchemaPatternInsts = 1 << 17
)

// errPatternSize is the error of a pattern whose program would be
// larger than its limit.
var errPatternSize = errors.New("the pattern compiles to too large a program")

// ecmaSpace is what \s matches in ECMA-262, the dialect JSON Schema
// names for "pattern": Go's \s is ASCII only, so ^\S+$ would let a
// no-break space through.
const ecmaSpace = `\t\n\x0B\f\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}`

// ecmaDot is what "." matches in ECMA-262 without the s flag: anything
// but a line terminator. Go's "." stops at \n only, so ^.*$ would let a
// carriage return through.
const ecmaDot = `[^\n\r\x{2028}\x{2029}]`

// compileECMA compiles a pattern with the ECMA-262 meaning of ".", \s
// and \S; the rest of the syntax both dialects share means the same.
// Constructs read differently by the two ([]..., [^]..., \S inside a
// class) are refused rather than guessed. A pattern whose program would
// have more than limit instructions is refused (errPatternSize) before
// it is compiled; size is the estimate of the one compiled.
func compileECMA(src string, limit int) (re *regexp.Regexp, size int, err error) {
	expr, err := translateECMA(src)
	if err != nil {
		return nil, 0, err
	}
	// Parsing is cheap, and regexp/syntax bounds it; writing the
	// repetitions out, which compiling does, is what costs.
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, 0, shortSyntaxError(err)
	}
	if size = progSize(tree, limit); size > limit {
		return nil, 0, errPatternSize
	}
	re, err = regexp.Compile(expr)
	if err != nil {
		return nil, 0, shortSyntaxError(err)
	}
	return re, size, nil
}

// translateECMA rewrites a pattern in ECMA-262 to one that means the
// same to Go (see compileECMA).
func translateECMA(src string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		ch := src[i]
		switch {
		case ch == '\\':
			if i+1 == len(src) {
				return "", errors.New("trailing backslash")
			}
			i++
			switch next := src[i]; {
			case next == 's' && inClass:
				b.WriteString(ecmaSpace)
			case next == 's':
				b.WriteString("[" + ecmaSpace + "]")
			case next == 'S' && inClass:
				return "", errors.New(`\S inside a character class is not supported`)
			case next == 'S':
				b.WriteString("[^" + ecmaSpace + "]")
			default:
				b.WriteByte('\\')
				b.WriteByte(next)
			}
		case inClass:
			if ch == ']' {
				inClass = false
			} else if ch == '[' && i+1 < len(src) && src[i+1] == ':' {
				return "", errors.New("[: inside a character class is read differently by ECMA-262 and Go")
			}
			b.WriteByte(ch)
		case ch == '[':
			inClass = true
			b.WriteByte(ch)
			if strings.HasPrefix(src[i+1:], "^") {
				i++
				b.WriteByte('^')
			}
			if strings.HasPrefix(src[i+1:], "]") {
				return "", errors.New("[] and [^] are read differently by ECMA-262 and Go")
			}
		case ch == '.':
			b.WriteString(ecmaDot)
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

// shortSyntaxError bounds the expression a regexp/syntax error quotes:
// "expression too large" quotes all of it, and it is the rewritten one.
func shortSyntaxError(err error) error {
	var se *syntax.Error
	if !errors.As(err, &se) || len(se.Expr) <= 64 {
		return err
	}
	return fmt.Errorf("%s: `%s…`", se.Code, strings.ToValidUTF8(se.Expr[:64], ""))
}

// progSize is the number of instructions re compiles to, counted as
// regexp/syntax counts them, with every counted repetition written out;
// it stops counting past limit, so the product of nested repetitions
// cannot overflow.
func progSize(re *syntax.Regexp, limit int) int {
	capped := func(n int) int { return min(n, limit+1) }
	sub := func(i int) int { return progSize(re.Sub[i], limit) }
	switch re.Op {
	case syntax.OpLiteral:
		return capped(len(re.Rune))
	case syntax.OpCapture:
		return capped(2 + sub(0))
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return capped(1 + sub(0))
	case syntax.OpConcat, syntax.OpAlternate:
		n := 0
		if re.Op == syntax.OpAlternate {
			n = len(re.Sub) - 1 // its splits
		}
		for i := range re.Sub {
			n = capped(n + sub(i))
		}
		return n
	case syntax.OpRepeat:
		// x{n,m} is n copies of x and m-n optional ones, a split each;
		// x{n,} is n copies and a star.
		x := sub(0)
		optional := re.Max - re.Min
		if re.Max < 0 {
			optional = 1
		}
		return capped(re.Min*x + optional*(1+x))
	}
	return 1
}
