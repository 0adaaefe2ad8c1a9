package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A user module tightens the policy; it never widens it. In a decision
// package (data.mcp.tools, network, filesystem, commands, audit and any
// package a built-in module lives in) a user rule may only
//
//   - add to a set the built-in policy collects from users: deny (and mask
//     in mcp.audit), written as a partial set in that very package:
//     `deny contains reason if { ... }`;
//   - define a helper whose name no built-in module of the package uses
//     (as a rule or as a variable),
//     is not reserved (allow, permitted, decision, reasons) and does not
//     shadow a built-in function (a rule named glob or count would capture
//     the built-in module's calls).
//
// A rule in any other package may not reach into a decision package or
// into data.mcp.policy through its head (package mcp with
// `filesystem.allow := true`, or `tools[x] := true`).
//
// `with` in a user rule changes only the user's own expression: it cannot
// change what the built-in rules evaluate to in a decision.

// decisionPackages are the decision points' packages with the rules users
// may extend in each.
var decisionPackages = map[string][]string{
	"tools":      {"deny"},
	"network":    {"deny"},
	"filesystem": {"deny"},
	"commands":   {"deny"},
	"audit":      {"deny", "mask"},
}

// reservedRules may never be defined by a user module in a decision
// package, whether or not a built-in module defines them today.
var reservedRules = []string{"allow", "permitted", "decision", "reasons", "default", "input", "data"}

// ErrUserModule means a user module tries to do more than tighten the
// policy.
var ErrUserModule = errors.New("a user module may only tighten the policy")

// guarded is a part of data.mcp user modules may not write to freely.
type guarded struct {
	path    ast.Ref
	extends []string        // rule names users may add to (partial sets)
	names   map[string]bool // rule names the built-in modules define there
	vars    map[string]bool // variable names the built-in modules use there
	data    bool            // the policy data document, off limits entirely
}

// checkUserModules refuses every rule of a user module that could widen a
// decision. builtin and user are parsed modules by file name; caps lists
// the built-in functions (nil means this OPA's).
func checkUserModules(builtin, user map[string]*ast.Module, caps *ast.Capabilities) error {
	if len(user) == 0 {
		return nil // nothing to check: the built-in modules alone are trusted
	}
	zones := map[string]*guarded{}
	zone := func(name string) *guarded {
		g, ok := zones[name]
		if !ok {
			g = &guarded{path: ast.MustParseRef("data.mcp." + name), names: map[string]bool{}, vars: map[string]bool{}, extends: []string{"deny"}}
			if ext, ok := decisionPackages[name]; ok {
				g.extends = ext
			}
			zones[name] = g
		}
		return g
	}
	for name := range decisionPackages {
		zone(name)
	}
	for _, m := range builtin {
		p := m.Package.Path
		if len(p) < 3 || !p[1].Equal(ast.InternedTerm("mcp")) {
			continue
		}
		s, ok := p[2].Value.(ast.String)
		if !ok || s == "policy" {
			continue
		}
		g := zone(string(s))
		// Every variable a built-in rule mentions is off limits too: a
		// user rule of that name would capture a variable the built-in
		// rule binds by unification.
		ast.WalkVars(m, func(v ast.Var) bool {
			if !v.IsWildcard() && !v.IsGenerated() {
				g.vars[string(v)] = true
			}
			return false
		})
		for _, r := range m.Rules {
			full := rulePath(p, r)
			if len(full) > len(g.path) {
				if n, ok := full[len(g.path)].Value.(ast.String); ok {
					g.names[string(n)] = true
				}
			}
		}
	}
	zones["policy"] = &guarded{path: ast.MustParseRef("data.mcp.policy"), data: true}

	if caps == nil {
		caps = ast.CapabilitiesForThisVersion()
	}
	builtinFuncs := map[string]string{}
	for _, b := range caps.Builtins {
		root, _, _ := strings.Cut(b.Name, ".")
		if _, seen := builtinFuncs[root]; !seen || b.Name == root {
			builtinFuncs[root] = b.Name
		}
	}

	var problems []string
	for _, file := range slices.Sorted(maps.Keys(user)) {
		m := user[file]
		for _, r := range m.Rules {
			if msg := checkRule(m, r, zones, builtinFuncs); msg != "" {
				line := 0
				if r.Location != nil {
					line = r.Location.Row
				}
				problems = append(problems, fmt.Sprintf("%s:%d: rule %s: %s", file, line, ruleName(r), msg))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n  %s", ErrUserModule, strings.Join(problems, "\n  "))
}

// ruleName is the rule as written: its head reference, with the function
// arguments or the default keyword.
func ruleName(r *ast.Rule) string {
	name := r.Head.Ref().String()
	if len(r.Head.Args) > 0 {
		name += "(...)"
	}
	if r.Default {
		name = "default " + name
	}
	return name
}

// rulePath is the rule's full path: data.<package>.<head reference>, the
// head's leading variable written as a string.
func rulePath(pkg ast.Ref, r *ast.Rule) ast.Ref {
	head := r.Head.Ref()
	full := make(ast.Ref, 0, len(pkg)+len(head))
	full = append(full, pkg...)
	if len(head) == 0 {
		return full
	}
	name := head[0]
	if v, ok := name.Value.(ast.Var); ok {
		name = ast.NewTerm(ast.String(v))
	}
	full = append(full, name)
	return append(full, head[1:]...)
}

// checkRule returns why r may not be defined, or "".
func checkRule(m *ast.Module, r *ast.Rule, zones map[string]*guarded, builtinFuncs map[string]string) string {
	pkg := m.Package.Path
	head := r.Head.Ref()
	// The rule's full path, data.<package>.<head...>, and the part of it
	// known before evaluation: everything up to the first variable.
	full := rulePath(pkg, r)
	prefix := full
	for i, t := range full {
		if i > 0 && !t.IsGround() { // full[0] is the root, the variable data
			prefix = full[:i]
			break
		}
	}
	for _, zn := range slices.Sorted(maps.Keys(zones)) {
		g := zones[zn]
		if !prefix.HasPrefix(g.path) && !g.path.HasPrefix(prefix) {
			continue
		}
		if g.data {
			return fmt.Sprintf("writes into %s, the policy data: change the YAML policy instead", g.path)
		}
		if !pkg.HasPrefix(g.path) {
			return fmt.Sprintf("reaches into the decision package %s from package %s; rules for it go in package %s and may only add to %s",
				g.path, pkg, strings.TrimPrefix(g.path.String(), "data."), strings.Join(g.extends, " or "))
		}
		if len(prefix) <= len(g.path) {
			return fmt.Sprintf("may write any rule of %s (its name is not known before evaluation)", g.path)
		}
		name := string(prefix[len(g.path)].Value.(ast.String))
		inPkg := pkg.Equal(g.path)
		switch {
		case slices.Contains(g.extends, name):
			switch {
			case !inPkg:
				return fmt.Sprintf("package %s shadows %s.%s; add to it in package %s", pkg, g.path, name, strings.TrimPrefix(g.path.String(), "data."))
			case r.Default:
				return fmt.Sprintf("%s is a set users add to; it has no default", name)
			case len(r.Head.Args) > 0:
				return fmt.Sprintf("%s is a set users add to, not a function", name)
			case len(head) != 1 || r.Head.RuleKind() != ast.MultiValue:
				return fmt.Sprintf("%s is a set users add to: write `%s contains reason if { ... }`", name, name)
			}
			return ""
		case slices.Contains(reservedRules, name) || g.names[name]:
			return fmt.Sprintf("%s.%s is defined by the built-in policy; a user module may only add to %s (%s contains reason if { ... })",
				g.path, name, strings.Join(g.extends, " or "), g.extends[0])
		case inPkg && builtinFuncs[name] != "":
			return fmt.Sprintf("shadows the built-in function %s, which the built-in rules of %s call", builtinFuncs[name], g.path)
		case g.vars[name]:
			return fmt.Sprintf("%s is a variable in the built-in rules of %s; a rule of that name would capture it (choose another name)", name, g.path)
		}
		return ""
	}
	return ""
}
