package jsonschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustCompile(t *testing.T, schema string) *Schema {
	t.Helper()
	s, err := Compile([]byte(schema))
	if err != nil {
		t.Fatalf("Compile(%s): %v", schema, err)
	}
	return s
}

func decode(t *testing.T, src string) any {
	t.Helper()
	v, err := Decode(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Decode(%s): %v", src, err)
	}
	return v
}

// validation cases: a schema, a value, and the failure expected ("" for
// valid), as pointer and keyword.
var cases = map[string]struct {
	schema, value string
	pointer, kw   string
}{
	// Types.
	"allow/type-string":           {`{"type":"string"}`, `"a"`, "", ""},
	"deny/type-string":            {`{"type":"string"}`, `1`, "", "type"},
	"allow/type-integer-dot-zero": {`{"type":"integer"}`, `1.0`, "", ""},
	"allow/type-integer-exp":      {`{"type":"integer"}`, `1e2`, "", ""},
	"deny/type-integer-fraction":  {`{"type":"integer"}`, `1.5`, "", "type"},
	"deny/type-integer-tiny-frac": {`{"type":"integer"}`, `1.0000000000000000000001`, "", "type"},
	"allow/type-number-integer":   {`{"type":"number"}`, `3`, "", ""},
	"allow/type-list":             {`{"type":["string","null"]}`, `null`, "", ""},
	"deny/type-list":              {`{"type":["string","null"]}`, `false`, "", "type"},
	"allow/true-schema":           {`true`, `{"a":[1]}`, "", ""},
	"deny/false-schema":           {`false`, `1`, "", "false"},
	// enum and const.
	"allow/enum":          {`{"enum":["a",1,null,{"x":[1]}]}`, `{"x":[1.0]}`, "", ""},
	"deny/enum":           {`{"enum":["a","b"]}`, `"c"`, "", "enum"},
	"allow/const-number":  {`{"const":10}`, `1e1`, "", ""},
	"deny/const":          {`{"const":"x"}`, `"y"`, "", "const"},
	"deny/enum-no-coerce": {`{"enum":[1]}`, `"1"`, "", "enum"},
	"deny/enum-bool-num":  {`{"enum":[false]}`, `0`, "", "enum"},
	// Numbers.
	"allow/minimum-equal":   {`{"minimum":1}`, `1`, "", ""},
	"deny/minimum":          {`{"minimum":1}`, `0.5`, "", "minimum"},
	"deny/maximum-exact":    {`{"maximum":100}`, `100.00000000000000000001`, "", "maximum"},
	"deny/exclusiveMinimum": {`{"exclusiveMinimum":1}`, `1`, "", "exclusiveMinimum"},
	"deny/exclusiveMaximum": {`{"exclusiveMaximum":1}`, `1`, "", "exclusiveMaximum"},
	"allow/multipleOf-dec":  {`{"multipleOf":0.1}`, `0.3`, "", ""},
	"deny/multipleOf":       {`{"multipleOf":2}`, `3`, "", "multipleOf"},
	"deny/multipleOf-huge":  {`{"multipleOf":3}`, `1e999999999`, "", "multipleOf"},
	// A multipleOf below float64's range is > 0 all the same, and exact.
	"allow/multipleOf-tiny":        {`{"multipleOf":1e-400}`, `3e-400`, "", ""},
	"allow/multipleOf-tiny-int":    {`{"multipleOf":1e-400}`, `7`, "", ""},
	"allow/multipleOf-tiny-zero":   {`{"multipleOf":1e-400}`, `0`, "", ""},
	"allow/multipleOf-tiny-frac":   {`{"multipleOf":2.5e-400}`, `0.0000000075e-391`, "", ""},
	"deny/multipleOf-tiny":         {`{"multipleOf":1e-400}`, `1.5e-400`, "", "multipleOf"},
	"deny/multipleOf-tiny-below":   {`{"multipleOf":1e-400}`, `1e-401`, "", "multipleOf"},
	"deny/multipleOf-tiny-frac":    {`{"multipleOf":2.5e-400}`, `6e-400`, "", "multipleOf"},
	"allow/multipleOf-tiny-5e-324": {`{"multipleOf":1e-400}`, `5e-324`, "", ""},
	"deny/multipleOf-tiny-far":     {`{"multipleOf":1e-400}`, `1e-1001`, "", "multipleOf"},
	// One above float64's range is exact too.
	"allow/multipleOf-huge-zero": {`{"multipleOf":1e400}`, `0`, "", ""},
	"allow/multipleOf-huge":      {`{"multipleOf":1e400}`, `3e400`, "", ""},
	"deny/multipleOf-huge-small": {`{"multipleOf":1e400}`, `5`, "", "multipleOf"},
	"deny/multipleOf-huge-frac":  {`{"multipleOf":1e400}`, `1.5e400`, "", "multipleOf"},
	"deny/multipleOf-huge-float": {`{"multipleOf":1e400}`, `1.7976931348623157e308`, "", "multipleOf"},
	"deny/maximum-huge-exp":      {`{"maximum":10}`, `1e999999999`, "", "maximum"},
	"allow/minimum-negative":     {`{"minimum":-5}`, `-5e0`, "", ""},
	// Literals too long for float64 or a cheap big.Rat still compare exactly.
	"deny/maximum-long":      {`{"maximum":1}`, `1.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`, "", "maximum"},
	"deny/maximum-long-int":  {`{"maximum":1e200}`, `100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`, "", "maximum"},
	"allow/maximum-long-eq":  {`{"maximum":1e200}`, `100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000.000`, "", ""},
	"deny/const-long":        {`{"const":1}`, `1.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`, "", "const"},
	"deny/enum-long":         {`{"enum":[1]}`, `1.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`, "", "enum"},
	"deny/exclusiveMin-long": {`{"exclusiveMinimum":-1}`, `-1.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`, "", "exclusiveMinimum"},
	"deny/minimum-tiny-exp":  {`{"minimum":1e-1000}`, `1e-1001`, "", "minimum"},
	"deny/exclusiveMax-inf":  {`{"exclusiveMaximum":1e400}`, `2e400`, "", "exclusiveMaximum"},
	"deny/multipleOf-long":   {`{"multipleOf":2}`, `100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`, "", "multipleOf"},
	"deny/exp-beyond-reason": {`{"type":"integer"}`, `1e1000000000000000000`, "", "type"},
	"allow/integer-big-exp":  {`{"type":"integer"}`, `1.5e400`, "", ""},
	"allow/number-not-str":   {`{"minimum":5}`, `"1"`, "", ""},
	// Strings.
	"allow/minLength-runes": {`{"minLength":2,"maxLength":2}`, `"éé"`, "", ""},
	"deny/minLength":        {`{"minLength":1}`, `""`, "", "minLength"},
	"deny/maxLength":        {`{"maxLength":1}`, `"ab"`, "", "maxLength"},
	"allow/pattern-search":  {`{"pattern":"b"}`, `"abc"`, "", ""},
	"deny/pattern":          {`{"pattern":"^BUG-[0-9]+$"}`, `"42"`, "", "pattern"},
	// ECMA-262's "." and \s, not Go's.
	"deny/pattern-dot-cr":        {`{"pattern":"^.*$"}`, `"a\rb"`, "", "pattern"},
	"deny/pattern-dot-ls":        {`{"pattern":"^a.b$"}`, `"a\u2028b"`, "", "pattern"},
	"allow/pattern-dot":          {`{"pattern":"^a.b$"}`, `"a\u00e9b"`, "", ""},
	"allow/pattern-escaped-dot":  {`{"pattern":"^a\\.b$"}`, `"a.b"`, "", ""},
	"deny/pattern-escaped-dot":   {`{"pattern":"^a\\.b$"}`, `"axb"`, "", "pattern"},
	"allow/pattern-dot-class":    {`{"pattern":"^[.]$"}`, `"."`, "", ""},
	"deny/pattern-dot-class":     {`{"pattern":"^[.]$"}`, `"x"`, "", "pattern"},
	"deny/pattern-nonspace":      {`{"pattern":"^\\S+$"}`, `"a\u00a0b"`, "", "pattern"},
	"allow/pattern-space":        {`{"pattern":"^a\\sb$"}`, `"a\ufeffb"`, "", ""},
	"allow/pattern-space-class":  {`{"pattern":"^[\\sx]+$"}`, `"x\u3000x"`, "", ""},
	"deny/pattern-space-class":   {`{"pattern":"^[^\\s]+$"}`, `"x\u3000x"`, "", "pattern"},
	"deny/patternProperties-dot": {`{"patternProperties":{"^x-.*$":true},"additionalProperties":false}`, `{"x-\r":1}`, "", "additionalProperties"},
	"allow/format-2020":          {`{"format":"email"}`, `"not an email"`, "", ""},
	"allow/format-regex":         {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"regex"}`, `"^a.b\\s$"`, "", ""},
	"allow/format-email":         {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, `"first.last+tag@example.com"`, "", ""},
	"deny/format-email-crlf":     {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, `"a\r\nbcc:victim@example.com"`, "", "format"},
	"deny/format-email-space":    {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, `"a b@example.com"`, "", "format"},
	"deny/format-email-dots":     {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, `"a..b@example.com"`, "", "format"},
	"allow/format-uri":           {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"uri"}`, `"https://example.com/a?b=c#d"`, "", ""},
	"deny/format-uri-space":      {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"uri"}`, `"https://example.com/a b"`, "", "format"},
	"deny/format-uri-ref-quote":  {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"uri-reference"}`, `"/a\"b"`, "", "format"},
	"deny/format-regex":          {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"regex"}`, `"(a"`, "", "format"},
	// Arrays.
	"deny/items":              {`{"items":{"type":"string"}}`, `["a",1]`, "/1", "type"},
	"allow/prefixItems":       {`{"prefixItems":[{"type":"string"}],"items":{"type":"integer"}}`, `["a",1,2]`, "", ""},
	"deny/prefixItems-rest":   {`{"prefixItems":[{"type":"string"}],"items":{"type":"integer"}}`, `["a",1,"b"]`, "/2", "type"},
	"deny/items-false":        {`{"prefixItems":[true],"items":false}`, `[1,2]`, "", "additionalItems"},
	"deny/minItems":           {`{"minItems":1}`, `[]`, "", "minItems"},
	"deny/maxItems":           {`{"maxItems":1}`, `[1,2]`, "", "maxItems"},
	"deny/uniqueItems":        {`{"uniqueItems":true}`, `[1,{"a":1},1.0]`, "", "uniqueItems"},
	"allow/uniqueItems":       {`{"uniqueItems":true}`, `[1,"1",true]`, "", ""},
	"allow/contains":          {`{"contains":{"const":2}}`, `[1,2]`, "", ""},
	"deny/contains":           {`{"contains":{"const":2}}`, `[1,3]`, "", "contains"},
	"deny/maxContains":        {`{"contains":{"const":2},"maxContains":1}`, `[2,2]`, "", "maxContains"},
	"allow/minContains-zero":  {`{"contains":{"const":2},"minContains":0}`, `[]`, "", ""},
	"allow/items-not-objects": {`{"items":{"type":"string"}}`, `{"a":1}`, "", ""},
	// Objects.
	"deny/required":             {`{"required":["a","b"]}`, `{"a":1}`, "", "required"},
	"deny/additional-false":     {`{"properties":{"a":true},"additionalProperties":false}`, `{"a":1,"b":2}`, "", "additionalProperties"},
	"deny/additional-schema":    {`{"additionalProperties":{"type":"string"}}`, `{"b":2}`, "/b", "type"},
	"allow/patternProperties":   {`{"patternProperties":{"^x-":{"type":"string"}},"additionalProperties":false}`, `{"x-a":"s"}`, "", ""},
	"deny/patternProperties":    {`{"patternProperties":{"^x-":{"type":"string"}}}`, `{"x-a":1}`, "/x-a", "type"},
	"deny/property-nested":      {`{"properties":{"a":{"properties":{"b/c":{"type":"string"}}}}}`, `{"a":{"b/c":1}}`, "/a/b~1c", "type"},
	"deny/propertyNames":        {`{"propertyNames":{"maxLength":2}}`, `{"abc":1}`, "", "propertyNames"},
	"deny/minProperties":        {`{"minProperties":1}`, `{}`, "", "minProperties"},
	"deny/maxProperties":        {`{"maxProperties":0}`, `{"a":1}`, "", "maxProperties"},
	"deny/dependentRequired":    {`{"dependentRequired":{"a":["b"]}}`, `{"a":1}`, "", "dependentRequired"},
	"deny/dependentSchemas":     {`{"dependentSchemas":{"a":{"required":["b"]}}}`, `{"a":1}`, "", "required"},
	"allow/property-named-enum": {`{"properties":{"enum":{"type":"string"}}}`, `{"enum":"x"}`, "", ""},
	// Applicators.
	"deny/allOf":            {`{"allOf":[{"type":"object"},{"required":["a"]}]}`, `{}`, "", "required"},
	"allow/anyOf":           {`{"anyOf":[{"type":"string"},{"type":"integer"}]}`, `1`, "", ""},
	"deny/anyOf":            {`{"anyOf":[{"type":"string"},{"type":"integer"}]}`, `true`, "", "anyOf"},
	"deny/anyOf-deeper":     {`{"anyOf":[{"type":"string"},{"properties":{"a":{"type":"integer"}}}]}`, `{"a":"x"}`, "/a", "type"},
	"deny/oneOf-two":        {`{"oneOf":[{"type":"integer"},{"minimum":0}]}`, `1`, "", "oneOf"},
	"allow/oneOf":           {`{"oneOf":[{"type":"integer"},{"type":"string"}]}`, `"s"`, "", ""},
	"deny/not":              {`{"not":{"type":"string"}}`, `"s"`, "", "not"},
	"deny/if-then":          {`{"if":{"properties":{"k":{"const":"a"}}},"then":{"required":["x"]},"else":{"required":["y"]}}`, `{"k":"a"}`, "", "required"},
	"allow/if-else":         {`{"if":{"properties":{"k":{"const":"a"}}},"then":{"required":["x"]},"else":{"required":["y"]}}`, `{"k":"b","y":1}`, "", ""},
	"allow/then-without-if": {`{"then":false}`, `1`, "", ""},
	// References.
	"deny/ref-defs":            {`{"$defs":{"id":{"pattern":"^BUG-"}},"properties":{"a":{"$ref":"#/$defs/id"}}}`, `{"a":"x"}`, "/a", "pattern"},
	"allow/ref-recursive":      {`{"$defs":{"t":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/t"}}}}},"$ref":"#/$defs/t"}`, `{"kids":[{"kids":[]}]}`, "", ""},
	"deny/ref-recursive":       {`{"$defs":{"t":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/t"}}}}},"$ref":"#/$defs/t"}`, `{"kids":[{"kids":[1]}]}`, "/kids/0/kids/0", "type"},
	"deny/ref-siblings":        {`{"$defs":{"s":{"type":"string"}},"$ref":"#/$defs/s","maxLength":1}`, `"ab"`, "", "maxLength"},
	"deny/ref-anchor":          {`{"$defs":{"s":{"$anchor":"str","type":"string"}},"properties":{"a":{"$ref":"#str"}}}`, `{"a":1}`, "/a", "type"},
	"deny/ref-own-id":          {`{"$id":"https://x.example/s.json","$defs":{"s":{"type":"string"}},"properties":{"a":{"$ref":"https://x.example/s.json#/$defs/s"}}}`, `{"a":1}`, "/a", "type"},
	"deny/ref-escaped":         {`{"$defs":{"a/b":{"type":"string"}},"$ref":"#/$defs/a~1b"}`, `1`, "", "type"},
	"deny/ref-cycle":           {`{"$ref":"#"}`, `1`, "", "cycle"},
	"deny/ref-percent":         {`{"$defs":{"a b":{"type":"string"}},"$ref":"#/$defs/a%20b"}`, `1`, "", "type"},
	"deny/ref-root":            {`{"properties":{"a":{"$ref":"#"}},"type":"object"}`, `{"a":{"a":1}}`, "/a/a", "type"},
	"allow/contains-recursive": {`{"$defs":{"t":{"type":"array","contains":{"$ref":"#/$defs/t"},"minContains":0}},"$ref":"#/$defs/t"}`, `[[[]]]`, "", ""},
	"allow/unknown-keys":       {`{"title":"t","x-vendor":{"type":"nope"},"default":5}`, `"s"`, "", ""},
	"allow/defs-unchecked":     {`{"$defs":{"unused":{"type":"string"}}}`, `1`, "", ""},

	// Draft-07, as zod-to-json-schema writes it.
	"allow/d7-items-tuple":    {`{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}`, `["a",1]`, "", ""},
	"deny/d7-additionalItems": {`{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}],"additionalItems":false}`, `["a",1]`, "", "additionalItems"},
	"deny/d7-definitions":     {`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"n":{"type":"integer"}},"properties":{"a":{"$ref":"#/definitions/n"}}}`, `{"a":"x"}`, "/a", "type"},
	"allow/d7-ref-siblings":   {`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"type":"string"}},"$ref":"#/definitions/s","maxLength":1}`, `"ab"`, "", ""},
	"deny/d7-dependencies":    {`{"$schema":"http://json-schema.org/draft-07/schema#","dependencies":{"a":["b"],"c":{"required":["d"]}}}`, `{"c":1}`, "", "required"},
	"deny/d7-format-email":    {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, `"not an email"`, "", "format"},
	"allow/d7-format-email":   {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"email"}`, `"a@b.example"`, "", ""},
	"deny/d7-format-datetime": {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"date-time"}`, `"2024-13-01T00:00:00Z"`, "", "format"},
	"allow/d7-format-unknown": {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"path"}`, `"x"`, "", ""},
	"deny/d7-format-uuid":     {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"uuid"}`, `"123"`, "", "format"},
	"deny/d7-format-ipv4":     {`{"$schema":"http://json-schema.org/draft-07/schema#","format":"ipv4"}`, `"01.2.3.4"`, "", "format"},
	"allow/d7-id-anchor":      {`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"$id":"#str","type":"string"}},"$ref":"#str"}`, `"a"`, "", ""},
	"deny/d4-exclusive-bool":  {`{"$schema":"http://json-schema.org/draft-04/schema#","maximum":1,"exclusiveMaximum":true}`, `1`, "", "exclusiveMaximum"},
	"allow/d2019-items-tuple": {`{"$schema":"https://json-schema.org/draft/2019-09/schema","items":[{"type":"string"}]}`, `["a",1]`, "", ""},
}

func TestValidate(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := mustCompile(t, tc.schema)
			err := s.Validate(decode(t, tc.value))
			if tc.kw == "" {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want valid", tc.value, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate(%s) = %v, want a *ValidationError", tc.value, err)
			}
			if diff := cmp.Diff([]string{tc.pointer, tc.kw}, []string{ve.Pointer, ve.Keyword}); diff != "" {
				t.Errorf("pointer, keyword (-want +got):\n%s\n(%v)", diff, ve)
			}
			if ve.Message == "" {
				t.Error("empty message")
			}
		})
	}
}

// The messages users see: they name the key, the keyword and the
// schema's limits, and never quote the value that failed.
func TestMessages(t *testing.T) {
	for name, tc := range map[string]struct{ schema, value, want string }{
		"type":       {`{"properties":{"n":{"type":"integer"}}}`, `{"n":"secret-token"}`, `at "/n": got string, want integer (keyword "type")`},
		"required":   {`{"required":["title"]}`, `{}`, `at "/": missing property "title" (keyword "required")`},
		"required-2": {`{"required":["a","b"]}`, `{}`, `at "/": missing properties "a", "b" (keyword "required")`},
		"additional": {`{"additionalProperties":false}`, `{"extra":1}`, `at "/": additional properties "extra" not allowed (keyword "additionalProperties")`},
		"enum":       {`{"properties":{"d":{"enum":["brief","full"]}}}`, `{"d":"everything"}`, `at "/d": value must be one of "brief", "full" (keyword "enum")`},
		"minLength":  {`{"minLength":1}`, `""`, `at "/": length must be >= 1, but got 0 (keyword "minLength")`},
		"maxLength":  {`{"maxLength":3}`, `"secret"`, `at "/": length must be <= 3, but got 6 (keyword "maxLength")`},
		"pattern":    {`{"pattern":"^BUG-"}`, `"secret"`, `at "/": does not match pattern "^BUG-" (keyword "pattern")`},
		"maximum":    {`{"maximum":100}`, `101`, `at "/": must be <= 100 (keyword "maximum")`},
		"anyOf":      {`{"anyOf":[{"type":"string"},{"type":"null"}]}`, `5`, `at "/": matches none of the 2 "anyOf" alternatives (first: got integer, want string) (keyword "anyOf")`},
	} {
		t.Run(name, func(t *testing.T) {
			err := mustCompile(t, tc.schema).Validate(decode(t, tc.value))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v\nwant    %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") && !strings.Contains(tc.want, "secret") {
				t.Errorf("message quotes the value: %v", err)
			}
		})
	}
}

// Schemas this package cannot evaluate faithfully fail to compile, with
// an error that says where and why.
func TestCompileRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ schema, want string }{
		"not-json":                        {`{"type":`, "not JSON"},
		"trailing":                        {`{} {}`, "not JSON"},
		"bad-type":                        {`{"properties":{"a":{"type":"nope"}}}`, `at "#/properties/a": "type": "nope" is not a JSON Schema type`},
		"huge-maxLength":                  {`{"maxLength":2147483648}`, `"maxLength" must be a non-negative integer`},
		"bad-minLength":                   {`{"minLength":"1"}`, `"minLength" must be a non-negative integer`},
		"bad-required":                    {`{"required":"a"}`, `"required" must be an array of strings`},
		"bad-pattern":                     {`{"pattern":"(?=x)"}`, "not a regular expression Go accepts"},
		"pattern-nonspace-in-class":       {`{"pattern":"[\\S]"}`, `\S inside a character class`},
		"pattern-empty-class":             {`{"pattern":"[]a]"}`, "[] and [^]"},
		"pattern-negated-empty-class":     {`{"pattern":"[^]"}`, "[] and [^]"},
		"pattern-posix-class":             {`{"pattern":"[[:alpha:]]"}`, "[: inside a character class"},
		"bad-multipleOf":                  {`{"multipleOf":0}`, `"multipleOf" must be greater than 0`},
		"multipleOf-zero-tiny-exp":        {`{"multipleOf":0e-400}`, `"multipleOf" must be greater than 0`},
		"multipleOf-negative-tiny":        {`{"multipleOf":-1e-400}`, `"multipleOf" must be greater than 0`},
		"multipleOf-negative-huge":        {`{"multipleOf":-1e400}`, `"multipleOf" must be greater than 0`},
		"multipleOf-exp-huge":             {`{"multipleOf":1e999999999}`, `"multipleOf" must be written in at most 128 characters`},
		"multipleOf-long":                 {`{"multipleOf":0.` + strings.Repeat("0", 126) + `1}`, `"multipleOf" must be written in at most 128 characters`},
		"multipleOf-exp-too-small":        {`{"multipleOf":1e-1100}`, `"multipleOf" must be written in at most 128 characters, with an exponent within ±1000`},
		"multipleOf-exp-too-large":        {`{"multipleOf":1e1100}`, `"multipleOf" must be written in at most 128 characters, with an exponent within ±1000`},
		"bad-schema":                      {`{"properties":{"a":1}}`, "must be an object or a boolean"},
		"unknown-draft":                   {`{"$schema":"http://json-schema.org/draft-03/schema#"}`, "unsupported draft"},
		"dynamicRef":                      {`{"$dynamicRef":"#x"}`, `keyword "$dynamicRef" is not supported`},
		"unevaluatedProperties":           {`{"properties":{"a":{"unevaluatedProperties":false}}}`, `keyword "unevaluatedProperties" is not supported`},
		"external-ref":                    {`{"$ref":"other.json"}`, "external references are not allowed"},
		"remote-ref":                      {`{"$ref":"https://example.com/s.json#/x"}`, "external references are not allowed"},
		"missing-ref":                     {`{"$ref":"#/$defs/nope"}`, `nothing at "#/$defs/nope"`},
		"missing-anchor":                  {`{"$ref":"#nope"}`, `no anchor "nope"`},
		"nested-id":                       {`{"$defs":{"x":{"$id":"https://other.example/x.json","$ref":"#/y"}}, "$ref":"#/$defs/x"}`, "embeds another $id"},
		"bad-ref-target":                  {`{"$defs":{"x":{"type":1}},"$ref":"#/$defs/x"}`, `"type" must be a type name`},
		"draft4-numeric-exclusiveMinimum": {`{"$schema":"http://json-schema.org/draft-04/schema#","exclusiveMinimum":5}`, `"exclusiveMinimum" must be a boolean in draft-04`},
		"draft4-numeric-exclusiveMaximum": {`{"$schema":"http://json-schema.org/draft-04/schema#","exclusiveMaximum":5}`, `"exclusiveMaximum" must be a boolean in draft-04`},
		"duplicate-anchor":                {`{"$defs":{"a":{"$anchor":"x","type":"string"}},"x-b":{"$anchor":"x"},"$ref":"#x"}`, `anchor "x" is also defined at "#/$defs/a"`},
		"duplicate-id-anchor":             {`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"a":{"$id":"#x"},"b":{"$id":"#x"}}}`, `anchor "x" is also defined`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile([]byte(tc.schema))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile(%s) = %v, want an error with %q", tc.schema, err, tc.want)
			}
		})
	}
}

// Values as encoding/json (float64) and YAML decoders (int) produce them
// validate the same as json.Number ones.
// A schema whose references fan out at every level fails the value
// once its budget is spent, instead of taking exponential time.
func TestFanOutBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"$ref":"#/$defs/a0","$defs":{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"a%d":{"allOf":[{"$ref":"#/$defs/a%d"},{"$ref":"#/$defs/a%d"}]},`, i, i+1, i+1)
	}
	b.WriteString(`"a40":true}}`)
	err := mustCompile(t, b.String()).Validate("x")
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Keyword != KeywordBudget {
		t.Fatalf("Validate = %v, want the budget's error", err)
	}
}

// uniqueItems sorts instead of comparing every pair: a long array of
// distinct items is checked, and equal items far apart are found, with
// the smaller index first.
func TestUniqueItemsLong(t *testing.T) {
	s := mustCompile(t, `{"uniqueItems":true}`)
	const n = 200000 // comparing every pair would take hours
	a := make([]any, n)
	for i := range a {
		a[i] = json.Number(fmt.Sprint(i))
	}
	if err := s.Validate(a); err != nil {
		t.Fatalf("distinct items: %v", err)
	}
	a[n-1] = map[string]any{"k": []any{json.Number("1e1")}}
	a[3] = map[string]any{"k": []any{10.0}}
	var ve *ValidationError
	if err := s.Validate(a); !errors.As(err, &ve) || ve.Keyword != "uniqueItems" || ve.Message != fmt.Sprintf("items at 3 and %d are equal", n-1) {
		t.Fatalf("equal items at 3 and %d: %v", n-1, err)
	}
}

func TestOrderMatchesEqual(t *testing.T) {
	vals := []string{`null`, `false`, `true`, `0`, `-0.0`, `1`, `1.0`, `1e0`, `2`, `-1`, `"1"`, `""`, `[]`, `[1]`, `[1.0]`, `[1,2]`, `{}`,
		`{"a":1}`, `{"a":1.0}`, `{"b":1}`, `{"a":1,"b":2}`, `{"a":[{"x":null}]}`}
	for _, x := range vals {
		for _, y := range vals {
			a, b := decode(t, x), decode(t, y)
			if (order(a, b) == 0) != equal(a, b) || order(a, b) != -order(b, a) {
				t.Errorf("order(%s, %s) = %d, equal = %v", x, y, order(a, b), equal(a, b))
			}
		}
	}
}

// The "regex" format compiles the caller's value: a long one is refused
// before it costs seconds and hundreds of MB.
func TestFormatRegexLong(t *testing.T) {
	s := mustCompile(t, `{"$schema":"http://json-schema.org/draft-07/schema#","format":"regex"}`)
	if err := s.Validate(strings.Repeat("a", maxRegexFormat)); err != nil {
		t.Fatalf("a regex of %d bytes: %v", maxRegexFormat, err)
	}
	var ve *ValidationError
	if err := s.Validate(strings.Repeat(".", 600000)); !errors.As(err, &ve) || ve.Keyword != "format" {
		t.Fatalf("a regex of 600 kB: %v, want a format error", err)
	}
}

// A schema that fans out to a pattern on a long string spends its
// budget on the string's length, not only on the number of steps: it
// fails the value instead of scanning the string a million times.
func TestFanOutBudgetLongString(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"$ref":"#/$defs/a0","$defs":{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"a%d":{"allOf":[{"$ref":"#/$defs/a%d"},{"$ref":"#/$defs/a%d"}]},`, i, i+1, i+1)
	}
	b.WriteString(`"a40":{"pattern":"^[a-z]*$"}}}`)
	s := mustCompile(t, b.String())
	var ve *ValidationError
	if err := s.Validate(strings.Repeat("a", 1<<18)); !errors.As(err, &ve) || ve.Keyword != KeywordBudget {
		t.Fatalf("Validate = %v, want the budget's error", err)
	}
	// A single pattern on a string of 1 MiB is well within the budget.
	if err := mustCompile(t, `{"pattern":"^[a-z]*$"}`).Validate(strings.Repeat("a", 1<<20)); err != nil {
		t.Fatalf("one pattern on 1 MiB: %v", err)
	}
}

// A multipleOf below float64's range checks values as encoding/json
// decodes them (float64) exactly too: the smallest float64 is 2^-1074,
// not 5e-324, and no multiple of 1e-400.
func TestMultipleOfTinyGoValues(t *testing.T) {
	s := mustCompile(t, `{"multipleOf":1e-400}`)
	for name, tc := range map[string]struct {
		v  any
		ok bool
	}{
		"allow/float64-one":     {1.0, true},
		"allow/float64-zero":    {0.0, true},
		"allow/int":             {3, true},
		"allow/float64-tenth":   {0.1, true}, // 0.1000000000000000055511151231257827021181583404541015625, 55 decimals
		"deny/float64-smallest": {math.SmallestNonzeroFloat64, false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(tc.v); (err == nil) != tc.ok {
				t.Errorf("Validate(%v) = %v, want ok=%v", tc.v, err, tc.ok)
			}
		})
	}
}

func TestGoValues(t *testing.T) {
	s := mustCompile(t, `{"type":"object","properties":{"n":{"type":"integer","minimum":1},"f":{"type":"number"}},"required":["n"]}`)
	for name, tc := range map[string]struct {
		v  any
		ok bool
	}{
		"allow/float64":     {map[string]any{"n": float64(2), "f": 1.5}, true},
		"allow/int":         {map[string]any{"n": 2}, true},
		"allow/uint64":      {map[string]any{"n": uint64(2)}, true},
		"allow/json.Number": {map[string]any{"n": json.Number("2")}, true},
		"deny/int-zero":     {map[string]any{"n": 0}, false},
		"deny/float-frac":   {map[string]any{"n": 2.5}, false},
		"deny/not-json":     {map[string]any{"n": struct{}{}}, false},
		"deny/bad-number":   {map[string]any{"n": json.Number("two")}, false},
		"deny/nan-number":   {map[string]any{"n": json.Number("NaN")}, false},
		"deny/hex-number":   {map[string]any{"n": json.Number("0x10")}, false},
		"deny/float-inf":    {map[string]any{"n": math.Inf(1)}, false},
		"deny/float-nan":    {map[string]any{"n": math.NaN()}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(tc.v); (err == nil) != tc.ok {
				t.Errorf("Validate(%v) = %v, want ok=%v", tc.v, err, tc.ok)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	v, err := Decode(strings.NewReader(`{"n": 12345678901234567890}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(map[string]any)["n"]; got != json.Number("12345678901234567890") {
		t.Errorf("n = %#v, want the json.Number", got)
	}
	for _, bad := range []string{``, `{`, `{} x`, `1 2`} {
		if _, err := Decode(strings.NewReader(bad)); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

func TestNumberLiterals(t *testing.T) {
	for lit, want := range map[string]bool{
		"0": true, "-0": true, "1.000": true, "1.5e1": true, "1.25e1": false, "1e-1": false,
		"0.0e-5": true, "10e-1": true, "100e-3": false, "0.10e1": true, "12e999999999999": true, "1.5e-999999999999": false, "1.0000000000000000000001": false,
	} {
		if got := (number{lit: lit}).isInteger(); got != want {
			t.Errorf("isInteger(%s) = %v, want %v", lit, got, want)
		}
	}
}

// FuzzValidate: no schema and value, however odd, makes Compile or
// Validate panic or loop.
func FuzzValidate(f *testing.F) {
	for _, tc := range cases {
		f.Add(tc.schema, tc.value)
	}
	f.Fuzz(func(t *testing.T, schema, value string) {
		s, err := Compile([]byte(schema))
		if err != nil {
			return
		}
		v, err := Decode(strings.NewReader(value))
		if err != nil {
			return
		}
		if err := s.Validate(v); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate error %T %v is not a *ValidationError", err, err)
			}
		}
	})
}

// A validation cut short (its budget spent, or a schema it cannot apply)
// refuses the value, also when the cut falls inside not, if, oneOf or
// contains: there a branch that did not finish must not count as a
// branch that did not match, which would let the value through.
func TestCutShortRefusesUnderEveryApplicator(t *testing.T) {
	// costly spends the whole budget on any value: a fan-out of 2^40.
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, `"a%d":{"allOf":[{"$ref":"#/$defs/a%d"},{"$ref":"#/$defs/a%d"}]},`, i, i+1, i+1)
	}
	b.WriteString(`"a40":true,`)
	b.WriteString(`"loop":{"$ref":"#/$defs/loop"},`)
	b.WriteString(`"nest":{"items":{"$ref":"#/$defs/nest"}}`)
	defs := `"$defs":{` + b.String() + `}`
	for name, tc := range map[string]struct{ schema, kw string }{
		"not/budget":      {`{"not":{"$ref":"#/$defs/a0"},` + defs + `}`, KeywordBudget},
		"not/cycle":       {`{"not":{"$ref":"#/$defs/loop"},` + defs + `}`, KeywordCycle},
		"not/depth":       {`{"not":{"$ref":"#/$defs/nest"},` + defs + `}`, KeywordDepth},
		"if/budget":       {`{"if":{"$ref":"#/$defs/a0"},"else":true,"then":false,` + defs + `}`, KeywordBudget},
		"if/in-allOf":     {`{"if":{"allOf":[{"$ref":"#/$defs/a0"}]},"then":true,"else":false,` + defs + `}`, KeywordBudget},
		"oneOf/budget":    {`{"oneOf":[{"$ref":"#/$defs/a0"},true],` + defs + `}`, KeywordBudget},
		"oneOf/depth":     {`{"oneOf":[{"$ref":"#/$defs/nest"},true],` + defs + `}`, KeywordDepth},
		"contains/budget": {`{"type":"array","contains":{"not":{"$ref":"#/$defs/a0"}},` + defs + `}`, KeywordBudget},
		"anyOf/budget":    {`{"anyOf":[{"not":{"$ref":"#/$defs/a0"}}],` + defs + `}`, KeywordBudget},
		"anyOf/cycle":     {`{"anyOf":[{"not":{"$ref":"#/$defs/loop"}}],` + defs + `}`, KeywordCycle},
	} {
		t.Run(name, func(t *testing.T) {
			var v any = map[string]any{"x": 1.0}
			switch {
			case strings.HasPrefix(name, "contains"):
				v = []any{"a"}
			case strings.HasSuffix(name, "/depth"):
				v = nestedArrays(400)
			}
			err := mustCompile(t, tc.schema).Validate(v)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Keyword != tc.kw {
				t.Fatalf("Validate = %v, want the validation cut short (keyword %q), refused", err, tc.kw)
			}
		})
	}
}

// nestedArrays is n arrays, each the only item of the one around it.
func nestedArrays(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

// A validation cut short says why in its keyword, whether or not the
// schema uses $ref: the budget spent, the nesting too deep, or a $ref
// cycle.
func TestCutShortKeywords(t *testing.T) {
	// A literal schema nested deeper than maxDepth, no $ref in it.
	deep := strings.Repeat(`{"items":`, maxDepth+10) + `true` + strings.Repeat(`}`, maxDepth+10)
	for name, tc := range map[string]struct {
		schema *Schema
		v      any
		kw     string
	}{
		// An enum costs a step per value: one longer than the budget
		// spends it at once.
		"budget/enum-no-ref": {mustCompileValue(t, map[string]any{"enum": make([]any, maxSteps+1)}), "x", KeywordBudget},
		"depth/no-ref":       {mustCompile(t, deep), nestedArrays(maxDepth + 10), KeywordDepth},
		"depth/ref":          {mustCompile(t, `{"items":{"$ref":"#"}}`), nestedArrays(maxDepth + 10), KeywordDepth},
		"cycle/ref":          {mustCompile(t, `{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`), 1.0, KeywordCycle},
	} {
		t.Run(name, func(t *testing.T) {
			var ve *ValidationError
			if err := tc.schema.Validate(tc.v); !errors.As(err, &ve) || ve.Keyword != tc.kw || ve.Message == "" {
				t.Fatalf("Validate = %v, want keyword %q", err, tc.kw)
			}
		})
	}
}

func mustCompileValue(t *testing.T, doc any) *Schema {
	t.Helper()
	s, err := CompileValue(doc)
	if err != nil {
		t.Fatalf("CompileValue: %v", err)
	}
	return s
}

// The property names a message shows are the caller's: bounded, however
// many or long they are.
func TestMessagesBoundCallerNames(t *testing.T) {
	obj := map[string]any{}
	for i := range 5000 {
		obj[fmt.Sprintf("%s%d", strings.Repeat("k", 100), i)] = 1.0
	}
	err := mustCompile(t, `{"additionalProperties":false}`).Validate(obj)
	if err == nil || len(err.Error()) > 1000 || !strings.Contains(err.Error(), "5000 in all") {
		t.Errorf("additionalProperties: %d bytes: %.300s", len(fmt.Sprint(err)), err)
	}
	long := strings.Repeat("é", 50000)
	err = mustCompile(t, `{"propertyNames":{"maxLength":3}}`).Validate(map[string]any{long: 1.0})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Message) > 1000 || !strings.Contains(ve.Message, "(100000 bytes)") {
		t.Errorf("propertyNames: %d bytes: %.300s", len(fmt.Sprint(err)), err)
	}
}

// The pointer of an error is made of the caller's property names:
// bounded like the names in a message, each token and the whole, with
// a visible mark where something was left out.
func TestPointersBoundCallerNames(t *testing.T) {
	k64 := strings.Repeat("k", maxPointerToken)
	long := strings.Repeat("k", 500000)
	deep := func(keys ...string) any {
		var v any = 1.0
		for i := len(keys) - 1; i >= 0; i-- {
			v = map[string]any{keys[i]: v}
		}
		return v
	}
	var keys []string
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("%d%s", i, strings.Repeat("k", 1000)))
	}
	// The first and the last tokens, each cut to 64 bytes.
	first, last := "/0"+strings.Repeat("k", maxPointerToken-1)+"…", "/19"+strings.Repeat("k", maxPointerToken-2)+"…"
	nested := `{"type":"object","additionalProperties":{"$ref":"#"}}`
	for name, tc := range map[string]struct {
		schema string
		v      any
		want   string
	}{
		"ordinary":         {nested, deep("a", "b/c", "d~e"), "/a/b~1c/d~0e"},
		"token-64-bytes":   {nested, deep(k64), "/" + k64},
		"token-long":       {nested, deep(long), "/" + k64 + "…"},
		"token-long-utf8":  {nested, deep("a" + strings.Repeat("é", 1000)), "/a" + strings.Repeat("é", (maxPointerToken-1)/2) + "…"},
		"token-escaped":    {nested, deep(strings.Repeat("~/", 1000)), "/" + strings.Repeat("~0~1", maxPointerToken/2) + "…"},
		"pointer-long":     {nested, deep(keys...), first + "/1" + strings.Repeat("k", maxPointerToken-1) + "…/2" + strings.Repeat("k", maxPointerToken-1) + "…/…/17" + strings.Repeat("k", maxPointerToken-2) + "…/18" + strings.Repeat("k", maxPointerToken-2) + "…" + last},
		"pointer-long-key": {`{"additionalProperties":{"type":"string"}}`, map[string]any{long: 1.0}, "/" + k64 + "…"},
	} {
		t.Run(name, func(t *testing.T) {
			err := mustCompile(t, tc.schema).Validate(tc.v)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Keyword != "type" {
				t.Fatalf("Validate = %.300v, want a type error", err)
			}
			if diff := cmp.Diff(tc.want, ve.Pointer); diff != "" {
				t.Errorf("pointer (-want +got):\n%s", diff)
			}
			if len(ve.Pointer) > maxPointer || len(err.Error()) > maxPointer+100 {
				t.Errorf("pointer of %d bytes, error of %d", len(ve.Pointer), len(err.Error()))
			}
		})
	}
}

// anyOf reports the failure of the alternative that got deepest into
// the value, by depth: not the one with the longest pointer, which a
// long property name makes long.
func TestBestOfDeepestNotLongest(t *testing.T) {
	long := strings.Repeat("k", 300)
	s := mustCompile(t, `{"anyOf":[
		{"properties":{"`+long+`":{"type":"string"}}},
		{"properties":{"a":{"properties":{"b":{"properties":{"c":{"type":"string"}}}}}}}]}`)
	err := s.Validate(map[string]any{long: 1.0, "a": map[string]any{"b": map[string]any{"c": 1.0}}})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Pointer != "/a/b/c" || ve.Keyword != "type" {
		t.Fatalf("Validate = %v, want the failure at /a/b/c", err)
	}
}

// A schema's patterns are bounded in length and in the size of the
// program they compile to, each and in all: the schema fails to compile,
// with an error that names where and does not quote the pattern at
// length, before a hostile one costs seconds and hundreds of MB.
func TestPatternBounds(t *testing.T) {
	reps := func(s string, n int) string { return strings.Repeat(s, n) }
	// a{1000} compiles to 1000 instructions.
	big := reps(`a{1000}`, maxPatternInsts/1000+1)
	fits := reps(`a{1000}`, maxPatternInsts/1000-1)
	var many, enough strings.Builder
	for i := range maxSchemaPatternInsts/(len(fits)/7*1000) + 1 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `"p%d":{"pattern":%q}`, i, fits)
	}
	for i := range maxSchemaPatternInsts / (len(fits) / 7 * 1000) {
		if i > 0 {
			enough.WriteByte(',')
		}
		fmt.Fprintf(&enough, `"p%d":{"pattern":%q}`, i, fits)
	}
	for name, tc := range map[string]struct{ schema, want string }{
		"deny/pattern-long":            {`{"properties":{"a":{"pattern":"` + reps("a", maxPattern+1) + `"}}}`, fmt.Sprintf(`at "#/properties/a": "pattern": a pattern of %d bytes is longer than the %d allowed`, maxPattern+1, maxPattern)},
		"deny/patternProperties-long":  {`{"patternProperties":{"` + reps("a", maxPattern+1) + `":true}}`, fmt.Sprintf(`at "#": "patternProperties": a pattern of %d bytes is longer than the %d allowed`, maxPattern+1, maxPattern)},
		"deny/pattern-large":           {`{"properties":{"a":{"pattern":"` + big + `"}}}`, fmt.Sprintf(`at "#/properties/a": "pattern": a pattern compiles to more than %d instructions`, maxPatternInsts)},
		"deny/patternProperties-large": {`{"patternProperties":{"` + big + `":true}}`, fmt.Sprintf(`at "#": "patternProperties": a pattern compiles to more than %d instructions`, maxPatternInsts)},
		"deny/patterns-large-in-all":   {`{"properties":{` + many.String() + `}}`, fmt.Sprintf(`"pattern": the schema's patterns compile to more than %d instructions in all`, maxSchemaPatternInsts)},
		"deny/pattern-long-invalid":    {`{"pattern":"(` + reps(".", maxPattern-1) + `"}`, "missing closing )"},
		"allow/pattern-at-length":      {`{"pattern":"` + reps("a", maxPattern) + `"}`, ""},
		"allow/pattern-dots-at-length": {`{"pattern":"` + reps(".", maxPattern) + `"}`, ""},
		"allow/pattern-within-size":    {`{"pattern":"` + fits + `"}`, ""},
		"allow/patterns-within-total":  {`{"properties":{` + enough.String() + `}}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile([]byte(tc.schema))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Compile: %.300v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile = %.300v, want an error with %q", err, tc.want)
			}
			if len(err.Error()) > maxPattern+1000 {
				t.Errorf("an error of %d bytes", len(err.Error()))
			}
		})
	}
}

// The "regex" format compiles the caller's value within the same bound
// on its program.
func TestFormatRegexLarge(t *testing.T) {
	s := mustCompile(t, `{"$schema":"http://json-schema.org/draft-07/schema#","format":"regex"}`)
	if err := s.Validate(strings.Repeat(`a{1000}`, maxPatternInsts/1000-1)); err != nil {
		t.Fatalf("a regex within the bound: %v", err)
	}
	var ve *ValidationError
	if err := s.Validate(strings.Repeat(`a{1000}`, maxPatternInsts/1000+1)); !errors.As(err, &ve) || ve.Keyword != "format" {
		t.Fatalf("a regex beyond the bound: %v, want a format error", err)
	}
}
