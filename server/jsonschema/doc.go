// Package jsonschema validates JSON values against the JSON Schemas that
// tools declare for their input, and against the policy file's schema.
//
// It is a validator, not a general JSON Schema toolkit: a schema is
// compiled from one self-contained document and then used to validate
// values decoded from JSON. It is a leaf: it depends on nothing else of
// the server and does no work when the program starts.
//
// # Drafts
//
// Draft 2020-12 is the default. A schema whose $schema names draft
// 2019-09, draft-07, draft-06 or draft-04 is read with that draft's
// meaning where it differs ("items" as an array, "additionalItems",
// "dependencies", $ref siblings ignored before 2019-09, boolean
// "exclusiveMinimum" in draft-04). Any other $schema is refused.
//
// # What is supported
//
// All assertion and applicator keywords of draft 2020-12 except those
// named below: type, enum, const, the numeric, string, array and object
// limits, pattern, properties, patternProperties, additionalProperties,
// propertyNames, required, dependentRequired, dependentSchemas, items,
// prefixItems, contains, allOf, anyOf, oneOf, not, if/then/else, and
// $ref to a JSON pointer or an anchor within the same document.
//
// Numbers are compared exactly, however many digits they are written
// with; a literal whose exponent has more than 15 digits is not taken as
// a number. "multipleOf" is exact, for numbers float64 cannot hold too
// (1e-400 is a valid divisor, and 3e-400 a multiple of it), when the
// divisor and the value are each written in at most 128 characters with
// a decimal exponent within ±1000 (every float64 qualifies): a divisor
// beyond that makes the schema fail to compile, as it could check no
// value, and a value beyond it is refused.
// Regular expressions are Go's (RE2), with ECMA-262's meaning of ".",
// \s and \S: a pattern that RE2 does not accept (look-around,
// back-references), or that the two dialects read differently ([]...,
// [^]..., \S or [: inside a class), makes the schema fail to compile.
// So does a pattern longer than 4 KiB, one whose program would exceed
// 65536 instructions (each counted repetition written out: a{1000}
// counts 1000), or patterns of one schema exceeding 131072 in all:
// schemas come from manifests and upstream servers, and RE2 alone would
// let a few KiB of pattern cost a second and 150 MB to compile.
//
// "format" asserts for drafts before 2019-09, as those drafts' validators
// commonly did (date-time, date, time, email, hostname, ipv4, ipv6, uri,
// uri-reference, uuid, regex, json-pointer; other names are annotations).
// An email's local part must be a dot-atom (a quoted one is refused), a
// uri has only the characters RFC 3986 allows, and a regex is at most
// 4 KiB and 65536 instructions, as its check compiles the caller's value.
// From 2019-09 on, "format" is an annotation only, as the specification
// says by default.
//
// # What is refused
//
// A schema that uses a keyword this package cannot evaluate fails to
// compile rather than being validated loosely: $dynamicRef,
// $recursiveRef, unevaluatedProperties, unevaluatedItems, a $ref to
// another document, and a $ref in a schema that embeds another $id.
//
// # Errors
//
// Validate returns a [*ValidationError] for the first failure found: the
// JSON pointer of the offending value, the failing keyword and a message.
//
// A validation is cut short, and the value refused, when applying the
// schema costs more than a fixed budget of steps, nests too deeply, or
// follows a $ref that leads back to itself without descending into the
// value. Its error names no schema keyword but why it stopped:
// [KeywordBudget] ("budget"), [KeywordDepth] ("depth") or
// [KeywordCycle] ("cycle"). The refusal is the answer of the whole
// validation, also when the cut falls under not, if, oneOf, anyOf or
// contains, where an unfinished branch must not count as a branch that
// did not match.
//
// Messages name keys and schema values, never the offending value itself,
// so they can be logged without leaking what a caller sent. The keys are
// the caller's, so they are bounded: a message shows at most 64 bytes of
// a name and about 200 bytes of a list of names, and a pointer at most
// 64 bytes of a token (cut ones end in "…") and 512 bytes in all (its
// first and last tokens around "/…").
package jsonschema
