package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// events renders test2json events, one per line.
func events(t *testing.T, es ...event) string {
	t.Helper()
	var b bytes.Buffer
	for _, e := range es {
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestSummaryListsSkipsWithReasons(t *testing.T) {
	const pkg = "github.com/ociclip/ociclip"
	in := events(t,
		event{Action: "run", Package: pkg, Test: "TestFUSE"},
		event{Action: "output", Package: pkg, Test: "TestFUSE", Output: "=== RUN   TestFUSE\n"},
		event{Action: "output", Package: pkg, Test: "TestFUSE", Output: "    fuse_test.go:40: fusermount3 not installed\n"},
		event{Action: "output", Package: pkg, Test: "TestFUSE", Output: "--- SKIP: TestFUSE (0.00s)\n"},
		event{Action: "skip", Package: pkg, Test: "TestFUSE"},
		event{Action: "output", Package: pkg, Test: "TestOK", Output: "    ok_test.go:1: chatter\n"},
		event{Action: "pass", Package: pkg, Test: "TestOK"},
		event{Action: "output", Package: pkg, Output: "PASS\n"},
		event{Action: "output", Package: pkg, Output: "ok  \t" + pkg + "\t0.5s\n"},
		event{Action: "pass", Package: pkg},
		event{Action: "output", Package: pkg + "/bench/cmd", Output: "?   \t" + pkg + "/bench/cmd\t[no test files]\n"},
		event{Action: "skip", Package: pkg + "/bench/cmd"},
	)
	var out bytes.Buffer
	failed, err := summarize(strings.NewReader(in), &out)
	if err != nil || failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
	got := out.String()
	for _, want := range []string{"ok  \t" + pkg + "\t0.5s\n", "[no test files]", "1 skipped", "SKIP " + pkg + " TestFUSE: fuse_test.go:40: fusermount3 not installed\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"chatter", "PASS\n", "=== RUN"} {
		if strings.Contains(got, not) {
			t.Errorf("output has %q:\n%s", not, got)
		}
	}
}

func TestSummaryFailures(t *testing.T) {
	const pkg = "example.com/p"
	in := events(t,
		event{Action: "output", Package: pkg, Test: "TestBad", Output: "    bad_test.go:9: wrong answer\n"},
		event{Action: "output", Package: pkg, Test: "TestBad", Output: "--- FAIL: TestBad (0.00s)\n"},
		event{Action: "fail", Package: pkg, Test: "TestBad"},
		event{Action: "output", Package: pkg, Output: "FAIL\t" + pkg + "\t0.1s\n"},
		event{Action: "fail", Package: pkg},
	) + "go: some error of the go command\n" + events(t,
		event{Action: "build-output", ImportPath: "example.com/q", Output: "q.go:1:1: syntax error\n"},
		event{Action: "build-fail", ImportPath: "example.com/q"},
	)
	var out bytes.Buffer
	failed, err := summarize(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
	for _, want := range []string{"bad_test.go:9: wrong answer", "--- FAIL: TestBad", "FAIL\t" + pkg, "go: some error", "q.go:1:1: syntax error", "no tests skipped",
		"FAILED: " + pkg + " TestBad, package " + pkg + ", build of example.com/q\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// A build failure alone fails.
	failed, _ = summarize(strings.NewReader(events(t, event{Action: "build-fail", ImportPath: "x"})), &bytes.Buffer{})
	if !failed {
		t.Error("build-fail did not fail")
	}
}
