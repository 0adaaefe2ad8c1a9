package policy

import (
	"fmt"
	"os"
)

// DryRun is the dry_run section: a policy decided next to this one whose
// would-be decisions are recorded in the audit log and never enforced.
// Either another policy file (its own YAML and rego.modules), or this
// policy with more modules, or that other policy with more modules.
// Absent: no dry run (the default).
type DryRun struct {
	// Policy is a whole policy file decided in dry run, relative to this
	// file. Its own dry_run section is refused.
	Policy string `yaml:"policy" policy:"path"`
	// Modules are Rego modules decided in dry run together with the
	// policy above, or with this policy's when Policy is empty.
	Modules []string `yaml:"modules" policy:"path"`
}

// Enabled reports whether the section names anything to decide.
func (d DryRun) Enabled() bool { return d.Policy != "" || len(d.Modules) > 0 }

// validateDryRun makes the section's paths absolute and checks they are
// files.
func (p *Policy) validateDryRun(d *decoder) error {
	dr := &p.DryRun
	check := func(key, path string) (string, error) {
		path = p.abs(path)
		st, err := os.Stat(path)
		if err != nil {
			return "", &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: err.Error()}
		}
		if st.IsDir() {
			return "", &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: path + " is a directory; name a file"}
		}
		return path, nil
	}
	var err error
	if _, present := p.lines["dry_run"]; present && !dr.Enabled() {
		return &Error{File: p.source, Line: d.lineOf("dry_run"), Key: "dry_run", Msg: "names neither a policy nor modules (leave the section out for no dry run)"}
	}
	if dr.Policy != "" {
		if dr.Policy, err = check("dry_run.policy", dr.Policy); err != nil {
			return err
		}
	}
	for i, m := range dr.Modules {
		if dr.Modules[i], err = check(fmt.Sprintf("dry_run.modules[%d]", i), m); err != nil {
			return err
		}
	}
	return nil
}
