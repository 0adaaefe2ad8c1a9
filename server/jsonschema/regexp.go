package jsonschema

import (
	"errors"
	"regexp"
	"strings"
)

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
// class) are refused rather than guessed.
func compileECMA(src string) (*regexp.Regexp, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		ch := src[i]
		switch {
		case ch == '\\':
			if i+1 == len(src) {
				return nil, errors.New("trailing backslash")
			}
			i++
			switch next := src[i]; {
			case next == 's' && inClass:
				b.WriteString(ecmaSpace)
			case next == 's':
				b.WriteString("[" + ecmaSpace + "]")
			case next == 'S' && inClass:
				return nil, errors.New(`\S inside a character class is not supported`)
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
				return nil, errors.New("[: inside a character class is read differently by ECMA-262 and Go")
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
				return nil, errors.New("[] and [^] are read differently by ECMA-262 and Go")
			}
		case ch == '.':
			b.WriteString(ecmaDot)
		default:
			b.WriteByte(ch)
		}
	}
	return regexp.Compile(b.String())
}
