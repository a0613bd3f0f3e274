// Package testenv holds the one rule for tests that need something of the
// machine (root, FUSE, umoci, skopeo, a pseudo-terminal): with CI=true,
// where .ci/run installs everything, a missing piece fails the test; on a
// developer machine it skips the test, saying what is missing.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run in CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// Missing fails t with CI=true and skips it otherwise, with the reason.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("CI=true but %s", why)
		return
	}
	t.Skipf("skipping: %s (set CI=true to make this a failure)", why)
}

// LookPath returns the path of the command name, or calls Missing.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s is not in PATH: %v", name, err)
	}
	return p
}
