package testenv

import (
	"strings"
	"testing"
)

// recorder records what Missing asks of a test.
type recorder struct {
	testing.TB
	skip, fatal string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skip = format }
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = format }

// TestMissing: without CI=true a missing piece skips the test; with it,
// the test fails.
func TestMissing(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	Missing(r, "nothing here")
	if r.fatal != "" || !strings.Contains(r.skip, "skipping") {
		t.Errorf("without CI: skip %q, fatal %q; want a skip", r.skip, r.fatal)
	}
	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	Missing(r, "nothing here")
	if r.skip != "" || !strings.Contains(r.fatal, "CI=true") {
		t.Errorf("with CI=true: skip %q, fatal %q; want a failure", r.skip, r.fatal)
	}
	if p := LookPath(t, "sh"); p == "" {
		t.Error("LookPath(sh) is empty")
	}
}
