package policy

// warners produce the warnings `policy check` and start-up print: each
// takes the policy and the names of the registered tools and returns
// warning lines. Files of this package register theirs from init.
var warners []func(*Policy, []string) []string
