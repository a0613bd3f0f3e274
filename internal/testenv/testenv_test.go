package testenv

import "testing"

// TestMissing: without CI=true a missing piece skips; with it, the test fails.
func TestMissing(t *testing.T) {
	t.Setenv("CI", "")
	skipped := false
	t.Run("dev", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Missing(t, "nothing here")
	})
	if !skipped {
		t.Error("Missing did not skip without CI=true")
	}
	t.Setenv("CI", "true")
	if !CI() {
		t.Fatal("CI() is false with CI=true")
	}
	// t.Fatalf would fail this test; check the path through LookPath of a
	// command that exists instead.
	if p := LookPath(t, "sh"); p == "" {
		t.Error("LookPath(sh) is empty")
	}
}
