package policy

// EmbeddedYAML is the source of the embedded default policy.
func EmbeddedYAML() []byte { return append([]byte(nil), defaultYAML...) }
