package audit_test

import (
	"fmt"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// Only the secret-shaped part of a string is replaced, with a fingerprint
// under the installation key: what the command does stays readable.
func ExampleRedactor_String() {
	r := audit.NewRedactor([]byte("an example key of thirty-two b.."))
	fmt.Println(r.String(`sh -c "echo pwned > f; id # Bearer AAAAAAAAAAAA"`))
	fmt.Println(r.String("postgres://app:s3cr3t@db.internal/app"))
	fmt.Println(r.String("token_count=5 bug_id=BUG-001"))
	// Output:
	// sh -c "echo pwned > f; id # Bearer [REDACTED:bda14e6ba9d4dfb7]"
	// postgres://app:[REDACTED:70d14f2bba3012ac]@db.internal/app
	// token_count=5 bug_id=BUG-001
}

// Verify reads the chain through rotated files, oldest first.
func ExampleVerify() {
	_, err := audit.Verify([]string{"/nonexistent/audit.log.1", "/nonexistent/audit.log"})
	fmt.Println(strings.Contains(fmt.Sprint(err), "no such file"))
	// Output: true
}
