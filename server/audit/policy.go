package audit

// KindPolicyReload records a policy reload: applied (result allow, with
// the old and new hashes) or rejected (result deny, with the error; the
// old policy stays in force).
const KindPolicyReload = "policy_reload"

// LabelBundleRevision is the label naming the revision of the policy
// bundle in force, on every record, when the policy is a bundle.
const LabelBundleRevision = "bundle_revision"

// DryRun is what a dry-run policy would have decided. It is recorded
// next to the enforced decision and never changes the answer: its
// encoding always says "enforced": false.
type DryRun struct {
	Allow   bool
	Reasons []string
	// Error says why the dry-run policy could not decide.
	Error string
}

// PolicyChange is the policy a KindPolicyReload record is about.
type PolicyChange struct {
	Source  string // the policy file
	OldHash string // sha256 of the policy in force before, hex
	NewHash string // sha256 of the policy read, hex
	// Kept names the settings that need a restart: the new policy's
	// values were not applied and the old ones stay in force.
	Kept    []string
	Trigger string // what asked for the reload: signal, file change
	// Revision is the bundle revision the record is about (a policy
	// from an OPA bundle): the one applied, or the one refused.
	Revision string
}

// dryRun encodes d; the reasons and error may carry what a client sent
// and are redacted like every client-controlled string.
func (e *encoder) dryRun(d *DryRun) {
	e.buf = append(e.buf, '{')
	e.field("enforced")
	e.raw("false")
	e.field("allow")
	if d.Allow {
		e.raw("true")
	} else {
		e.raw("false")
	}
	if len(d.Reasons) > 0 {
		e.field("reasons")
		e.value(d.Reasons, true)
	}
	if d.Error != "" {
		e.field("error")
		e.str(d.Error)
	}
	e.buf = append(e.buf, '}')
}

func (e *encoder) policyChange(p *PolicyChange) {
	e.buf = append(e.buf, '{')
	e.field("source")
	e.str(p.Source)
	if p.OldHash != "" {
		e.field("old_hash")
		e.quote(p.OldHash)
	}
	if p.NewHash != "" {
		e.field("new_hash")
		e.quote(p.NewHash)
	}
	if len(p.Kept) > 0 {
		e.field("kept")
		e.value(p.Kept, false)
	}
	if p.Trigger != "" {
		e.field("trigger")
		e.quote(p.Trigger)
	}
	if p.Revision != "" {
		// A bundle service chose it: redacted like a client's string.
		e.field("revision")
		e.str(p.Revision)
	}
	e.buf = append(e.buf, '}')
}
