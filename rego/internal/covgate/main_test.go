package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `{"files":{
 "rego/mcp/a/a.rego":{"covered":[{"start":{"row":1},"end":{"row":9}}],"not_covered":[{"start":{"row":10},"end":{"row":10}}]},
 "rego/mcp/a/a_test.rego":{"covered":[{"start":{"row":1},"end":{"row":100}}]},
 "policy-tests/x_test.rego":{"covered":[{"start":{"row":1},"end":{"row":50}}]}}}`

func TestCountsPolicyModulesOnly(t *testing.T) {
	var out bytes.Buffer
	// 9 of 10 rows: 90%, though the test files would lift it to 99%.
	if err := run(strings.NewReader(sample), &out, "rego/", 95); err == nil || !strings.Contains(err.Error(), "90.00%") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if err := run(strings.NewReader(sample), &out, "rego/", 90); err != nil {
		t.Fatalf("at 90%%: %v", err)
	}
	if !strings.Contains(out.String(), "not covered: lines [10]") {
		t.Errorf("output does not show the gap:\n%s", out.String())
	}
	if err := run(strings.NewReader(sample), &out, "nothing/", 0); err == nil {
		t.Error("an empty selection passed")
	}
}
