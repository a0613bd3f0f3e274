// Command testsummary reads the event stream of `go test -json` on stdin,
// prints what plain `go test` prints (package results, and the output of
// failing tests and packages, build errors included) and ends with a
// summary of the tests that skipped and why, which plain `go test` hides
// without -v. It exits 1 when a test, package or build failed.
//
//	go test -json ./... | go run ./internal/testsummary
//
// make test runs the unit tests this way, so that a machine missing fuse3,
// umoci or skopeo does not silently run fewer tests.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// event is one record of `go test -json` (cmd/test2json), build events
// included.
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

// skip is a skipped test and the lines it logged.
type skip struct {
	pkg, test, reason string
}

// summarize copies the interesting part of the stream r to w, then the
// skip summary, and reports whether anything failed. Lines that are not
// JSON (the go command's own errors) are copied as they are.
func summarize(r io.Reader, w io.Writer) (failed bool, err error) {
	out := map[[2]string]*strings.Builder{} // package, test -> output
	var skips []skip
	var fails []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := [2]string{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			io.WriteString(w, e.Output)
		case "build-fail":
			failed = true
			fails = append(fails, "build of "+e.ImportPath)
		case "output":
			if e.Test == "" {
				// Package lines: "ok", "FAIL", panics, "[no test files]".
				if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
					io.WriteString(w, e.Output)
				}
				continue
			}
			b := out[key]
			if b == nil {
				b = &strings.Builder{}
				out[key] = b
			}
			b.WriteString(e.Output)
		case "fail":
			failed = true
			if e.Test == "" {
				fails = append(fails, "package "+e.Package)
				continue
			}
			fails = append(fails, e.Package+" "+e.Test)
			if b := out[key]; b != nil {
				io.WriteString(w, b.String())
			}
			delete(out, key)
		case "skip":
			if e.Test != "" {
				skips = append(skips, skip{e.Package, e.Test, skipReason(out[key])})
			}
			delete(out, key)
		case "pass":
			delete(out, key)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	printSkips(w, skips)
	if len(fails) > 0 {
		fmt.Fprintf(w, "\nFAILED: %s\n", strings.Join(fails, ", "))
	}
	return failed, nil
}

// skipReason is what a skipped test logged, without the framework's lines.
func skipReason(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	var parts []string
	for _, l := range strings.Split(b.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, "; ")
}

// printSkips ends the output with the skipped tests, grouped by package.
func printSkips(w io.Writer, skips []skip) {
	if len(skips) == 0 {
		fmt.Fprintln(w, "no tests skipped")
		return
	}
	sort.SliceStable(skips, func(i, j int) bool {
		if skips[i].pkg != skips[j].pkg {
			return skips[i].pkg < skips[j].pkg
		}
		return skips[i].test < skips[j].test
	})
	fmt.Fprintf(w, "\n%d skipped (with CI=true, tests that need a missing tool fail instead):\n", len(skips))
	for _, s := range skips {
		reason := s.reason
		if reason == "" {
			reason = "(no reason given)"
		}
		fmt.Fprintf(w, "  SKIP %s %s: %s\n", s.pkg, s.test, reason)
	}
}
