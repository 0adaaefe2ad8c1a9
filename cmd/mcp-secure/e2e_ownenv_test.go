//go:build unix

package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// leftOutRecord is the audit record of kind whose input's key is name.
func (e *env) leftOutRecord(t *testing.T, kind, key, name string) map[string]any {
	t.Helper()
	for _, r := range e.records(t) {
		if in, ok := r["input"].(map[string]any); ok && r["kind"] == kind && in[key] == name {
			return r
		}
	}
	t.Fatalf("no audit record of kind %s for %s %s", kind, key, name)
	return nil
}

// wantReason checks that rec is a denial whose reasons hold every want.
func wantReason(t *testing.T, rec map[string]any, want ...string) {
	t.Helper()
	reasons := fmt.Sprint(rec["reasons"])
	if rec["result"] != "deny" {
		t.Errorf("record %v: want result deny", rec)
	}
	for _, w := range want {
		if !strings.Contains(reasons, w) {
			t.Errorf("reasons %s do not say %q", reasons, w)
		}
	}
}

// TestE2EPolicyVariablesAreOwn: a variable the policy takes with ${VAR}
// (here the decision-log token) is the server's own. An upstream that
// asks for it by name or through its own ${VAR}, an external plugin and
// an MCP plugin whose manifests name it, are all left out: the log and
// the audit log name the variable, and its value reaches neither.
func TestE2EPolicyVariablesAreOwn(t *testing.T) {
	s := startDLService(t)
	e := newEnv(t, decisionLogPolicy(s.url, "min_delay_seconds: 1, max_delay_seconds: 1"))
	const token = "dl-token-e2e"
	e.vars = []string{"DL_TOKEN=" + token}
	ownVariableRefused(t, e, "DL_TOKEN", token)
}

// TestE2EReloadedPolicyVariablesAreOwn: a variable that a reloaded
// policy takes with ${VAR} becomes the server's own from that reload on,
// though the policy the server started with did not take it. An external
// plugin whose manifest passes it got its value before the reload; a
// plugin process started after it is refused the variable (the call is
// an error naming it) and its value reaches no child. The set only
// grows: reloading the first policy again does not hand it back.
func TestE2EReloadedPolicyVariablesAreOwn(t *testing.T) {
	const secret = "reloaded-secret-e2e"
	e := newEnv(t, "")
	e.vars = []string{"FX_PASSED=" + secret}
	good := extPlugin(t, e, "good", fxManifest("good", "good", ""))
	first := mustRead(t, e.policy) + extPolicy(good)
	e.write(t, "policy.yaml", first)

	rc := e.connectReload(t, "")
	if res := call(t, rc.cs, "good_echo", map[string]any{"text": "before"}); res.IsError || !strings.Contains(text(res), "env="+secret+"|") {
		t.Fatalf("before the reload: %q (error %v), want the plugin given FX_PASSED", text(res), res.IsError)
	}

	// The reloaded policy sends decision logs with a token taken from
	// FX_PASSED: the variable is now a credential of the server.
	e.write(t, "policy.yaml", first+`telemetry:
  decision_logs:
    service:
      url: "http://127.0.0.1:9"
      credentials:
        bearer: {token: "${FX_PASSED}"}
`)
	rc.hup(t)
	if r := e.waitReloads(t, 1)[0]; r["result"] != "allow" {
		t.Fatalf("reload record %v: want the policy applied", r)
	}
	// The client is told the tool failed; the log says why.
	const refusal = "plugin good: environment variable FX_PASSED is refused: it is the server's own"
	res := call(t, rc.cs, "good_echo", map[string]any{"text": "after"})
	wantError(t, res, "failed")
	if strings.Contains(text(res), secret) {
		t.Errorf("after the reload the plugin was given FX_PASSED: %q", text(res))
	}
	// The log line and the result come on different pipes.
	waitFor(t, 10*time.Second, "the refusal in the log", func() bool { return strings.Contains(rc.stderr.String(), refusal) })
	if n := strings.Count(rc.stderr.String(), refusal); n != 1 {
		t.Errorf("the log says %q %d times after the call, want once", refusal, n)
	}

	// Back to the first policy: FX_PASSED stays the server's own.
	e.write(t, "policy.yaml", first)
	rc.hup(t)
	if r := e.waitReloads(t, 2)[1]; r["result"] != "allow" {
		t.Fatalf("second reload record %v: want the policy applied", r)
	}
	res = call(t, rc.cs, "good_echo", map[string]any{"text": "again"})
	wantError(t, res, "failed")
	if strings.Contains(text(res), secret) {
		t.Errorf("after the policy dropped ${FX_PASSED} the plugin was given it: %q", text(res))
	}
	if reasons := fmt.Sprint(e.launchRefusal(t, "good_echo")["reasons"]); !strings.Contains(reasons, "FX_PASSED is refused: it is the server's own") {
		t.Errorf("the launch's denial gives reasons %s, want the variable named", reasons)
	}
	waitFor(t, 10*time.Second, "the second refusal in the log", func() bool { return strings.Count(rc.stderr.String(), refusal) >= 2 })
	if n := strings.Count(rc.stderr.String(), refusal); n != 2 {
		t.Errorf("the log says %q %d times after the second call, want twice", refusal, n)
	}
}

// dryRunTaking is a dry-run policy whose decision-log token is taken
// from the variable name, as a candidate copied from a policy in
// production would take it.
func dryRunTaking(name string) string {
	return `version: "1.0"
telemetry:
  decision_logs:
    service:
      url: "http://127.0.0.1:9"
      credentials:
        bearer: {token: "${` + name + `}"}
`
}

// TestE2EDryRunPolicyVariablesAreOwn: a variable the dry-run policy
// (dry_run.policy) takes with ${VAR} is the server's own as much as one
// the enforced policy takes, though the dry-run policy is never
// enforced: an upstream that asks for it by name or through its own
// ${VAR}, an external plugin and an MCP plugin whose manifests name it,
// are all left out, audited and logged naming the variable, and its
// value reaches none of them. policy check warns of each.
func TestE2EDryRunPolicyVariablesAreOwn(t *testing.T) {
	e := newEnv(t, "dry_run:\n  policy: candidate.yaml\n")
	const secret = "dry-run-secret-e2e"
	e.vars = []string{"SOME_SECRET=" + secret}
	e.write(t, "candidate.yaml", dryRunTaking("SOME_SECRET"))
	ownVariableRefused(t, e, "SOME_SECRET", secret)
}

// TestE2EReloadedDryRunPolicyVariablesAreOwn: a reload that brings in a
// dry-run policy taking ${VAR} makes the variable the server's own from
// that reload on, whether the reload is applied or refused (here for a
// call timeout only a restart can change), as for the enforced policy's
// variables. An external plugin whose manifest passes it got its value
// before; a plugin process started after is refused the variable (the
// call is an error, the log names it) and its value reaches no child.
// The set only grows: a later policy without the dry run does not hand
// it back.
func TestE2EReloadedDryRunPolicyVariablesAreOwn(t *testing.T) {
	const secret = "dry-run-reloaded-secret-e2e"
	const refusal = "plugin good: environment variable FX_PASSED is refused: it is the server's own"
	for _, tc := range []struct {
		name   string
		edit   func(first string) string
		result string // of the reload record
	}{
		{"applied", func(first string) string { return first }, "allow"},
		{"refused", func(first string) string { return strings.Replace(first, "timeout: 10", "timeout: 11", 1) }, "deny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			e.vars = []string{"FX_PASSED=" + secret}
			e.extraArgs = []string{"--reload-interval", "0"}
			good := extPlugin(t, e, "good", fxManifest("good", "good", ""))
			first := mustRead(t, e.policy) + extPolicy(good)
			e.write(t, "policy.yaml", first)
			e.write(t, "candidate.yaml", dryRunTaking("FX_PASSED"))

			rc := e.connectReload(t, "")
			if res := call(t, rc.cs, "good_echo", map[string]any{"text": "before"}); res.IsError || !strings.Contains(text(res), "env="+secret+"|") {
				t.Fatalf("before the reload: %q (error %v), want the plugin given FX_PASSED", text(res), res.IsError)
			}

			e.write(t, "policy.yaml", tc.edit(first)+"dry_run:\n  policy: candidate.yaml\n")
			rc.hup(t)
			r := e.waitReloads(t, 1)[0]
			if r["result"] != tc.result {
				t.Fatalf("reload record %v: want result %s", r, tc.result)
			}
			if tc.result == "deny" && !strings.Contains(fmt.Sprint(r["error"]), "tools.timeout") {
				t.Fatalf("reload record %v: want it refused for tools.timeout", r)
			}
			res := call(t, rc.cs, "good_echo", map[string]any{"text": "after"})
			wantError(t, res, "failed")
			if strings.Contains(text(res), secret) {
				t.Errorf("after the reload the plugin was given FX_PASSED: %q", text(res))
			}
			// No process was started for the call: it is audited as
			// allowed by the policy, then failed.
			if d, r, launches := e.callRecords(t, "good_echo"); d["result"] != "allow" || r == nil || r["status"] != "tool_error" || launches != 0 {
				t.Errorf("audit: decision %v, result %v, %d launches; want allow, tool_error and none", d["result"], r, launches)
			}
			// The launch's refusal is audited under the call, with the
			// variable named.
			if reasons := fmt.Sprint(e.launchRefusal(t, "good_echo")["reasons"]); !strings.Contains(reasons, "FX_PASSED is refused: it is the server's own") {
				t.Errorf("the launch's denial gives reasons %s, want the variable named", reasons)
			}
			// The log line and the result come on different pipes.
			waitFor(t, 10*time.Second, "the refusal in the log", func() bool { return strings.Contains(rc.stderr.String(), refusal) })
			if n := strings.Count(rc.stderr.String(), refusal); n != 1 {
				t.Errorf("the log says %q %d times after the call, want once", refusal, n)
			}
			if tc.result == "deny" {
				return // the policy in force never took ${FX_PASSED}
			}

			// Back to the first policy: FX_PASSED stays the server's own.
			e.write(t, "policy.yaml", first)
			rc.hup(t)
			if r := e.waitReloads(t, 2)[1]; r["result"] != "allow" {
				t.Fatalf("second reload record %v: want the policy applied", r)
			}
			res = call(t, rc.cs, "good_echo", map[string]any{"text": "again"})
			wantError(t, res, "failed")
			if strings.Contains(text(res), secret) {
				t.Errorf("after the dry run was dropped the plugin was given FX_PASSED: %q", text(res))
			}
			if d, r, launches := e.callRecords(t, "good_echo"); d["result"] != "allow" || r == nil || r["status"] != "tool_error" || launches != 0 {
				t.Errorf("audit: decision %v, result %v, %d launches; want allow, tool_error and none", d["result"], r, launches)
			}
			// The launch's refusal is audited under the call, with the
			// variable named.
			if reasons := fmt.Sprint(e.launchRefusal(t, "good_echo")["reasons"]); !strings.Contains(reasons, "FX_PASSED is refused: it is the server's own") {
				t.Errorf("the launch's denial gives reasons %s, want the variable named", reasons)
			}
			waitFor(t, 10*time.Second, "the second refusal in the log", func() bool { return strings.Count(rc.stderr.String(), refusal) >= 2 })
			if n := strings.Count(rc.stderr.String(), refusal); n != 2 {
				t.Errorf("the log says %q %d times after the second call, want twice", refusal, n)
			}
		})
	}
}

// ownVariableRefused checks that name, a variable of value the policy of
// e takes with ${VAR} (the enforced or the dry-run one), is the server's
// own: an upstream that takes it through its own ${VAR} or by name, an
// external plugin and an MCP plugin whose manifests name it are left out,
// audited and logged naming the variable, a plugin that does not ask for
// it is served, the value reaches neither log, and policy check warns of
// each.
func ownVariableRefused(t *testing.T, e *env, name, value string) {
	t.Helper()
	leaky := extPlugin(t, e, "leaky", strings.Replace(fxManifest("leaky", "leaky", ""), "env: [FX_PASSED]", "env: [FX_PASSED, "+name+"]", 1))
	good := extPlugin(t, e, "good", fxManifest("good", "good", ""))
	mcpLeaky := mcpPluginDir(t, e, "mcpleaky", "env: ["+name+"]\n")
	e.write(t, "policy.yaml", mustRead(t, e.policy)+`servers:
  viaref:
    command: /bin/true
    env:
      TOKEN: "${`+name+`}"
  byname:
    command: /bin/true
    env:
      `+name+`: "x"
`+extPolicy(leaky, good, filepath.Dir(mcpLeaky)))

	cs, logs := e.connectLog(t)
	got := listNames(t, cs)
	if !slices.Contains(got, "good_echo") || slices.Contains(got, "leaky_echo") || slices.ContainsFunc(got, func(n string) bool {
		return strings.HasPrefix(n, "mcpleaky__") || strings.HasPrefix(n, "viaref__") || strings.HasPrefix(n, "byname__")
	}) {
		t.Fatalf("tools = %v: want good_echo and nothing of the plugins and servers asking for %s", got, name)
	}
	if res := call(t, cs, "good_echo", map[string]any{"text": "ok"}); res.IsError {
		t.Fatalf("good_echo: %q", text(res))
	}
	cs.Close()

	own := "the server's own"
	wantReason(t, e.leftOutRecord(t, "upstream", "server", "viaref"), "servers.viaref.env.TOKEN takes ${"+name+"}", own)
	wantReason(t, e.leftOutRecord(t, "upstream", "server", "byname"), "servers.byname.env."+name+" is refused", own)
	wantReason(t, e.leftOutRecord(t, "plugin", "plugin", "leaky"), "environment variable "+name+" is refused", own,
		filepath.Join(leaky, "manifest.yaml"))
	wantReason(t, e.leftOutRecord(t, "upstream", "server", "mcpleaky"), "environment variable "+name+" is refused", own)
	for _, w := range []string{"${" + name + "}", name + " is refused"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("the log does not say %q", w)
		}
	}
	if strings.Contains(mustRead(t, e.audit), value) || strings.Contains(logs.String(), value) {
		t.Errorf("the value of %s reached the audit log or the log", name)
	}

	t.Run("policy-check-warns", func(t *testing.T) {
		cmd := exec.Command(binPath, "policy", "check", "--policy", e.policy)
		cmd.Env = append(cmd.Environ(), e.vars...)
		out, err := cmd.CombinedOutput()
		for _, w := range []string{
			"upstream server viaref will not start: servers.viaref.env.TOKEN takes ${" + name + "}",
			"upstream server byname will not start: servers.byname.env." + name + " is refused",
			"plugin left out: " + filepath.Join(leaky, "manifest.yaml") + ": environment variable " + name + " is refused",
		} {
			if !strings.Contains(string(out), w) {
				t.Errorf("policy check (exit %d) does not warn %q:\n%s", exitCode(err), w, out)
			}
		}
	})
}
