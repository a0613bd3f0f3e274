package main

import (
	"fmt"
	"strings"
	"testing"
)

// A usage error is one line on stderr naming the problem and the command's
// help, exit 2, nothing on stdout: not the whole help text.
func TestUsageErrorsOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"index", "--bogus", "x"},
		{"index", "a", "b", "-o", "x.clip"},
		{"index", "oci:x"},
		{"index", "oci:x", "-o", "x.clip", "--jobs", "many"},
		{"inspect"},
		{"inspect", "--bogus", "x.clip"},
		{"ls"},
		{"cat", "x.clip"},
		{"verify", "x.clip", "y.clip"},
		{"diff", "a.clip"},
		{"diff", "--bogus", "a.clip", "b.clip"},
		{"version", "extra"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		want := fmt.Sprintf("; see 'ociclip %s --help'\n", args[0])
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, want) ||
			!strings.HasPrefix(stderr, "ociclip "+args[0]+": ") || strings.Contains(stderr, "usage:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line ending %q", args, code, stdout, stderr, want)
		}
	}
}

// Help asked for goes to stdout (exit 0), for every command, and "ociclip
// help COMMAND" prints the same.
func TestSubcommandHelpOnStdout(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"--help", "-h"} {
			code, stdout, stderr := runCLI(t, c.name, h)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: ociclip "+c.name) || !strings.Contains(stdout, "Options:") {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", c.name, h, code, stdout, stderr)
			}
		}
		_, want, _ := runCLI(t, c.name, "--help")
		code, stdout, stderr := runCLI(t, "help", c.name)
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("help %s: exit %d, stdout %q, stderr %q; want %s --help's output", c.name, code, stdout, stderr, c.name)
		}
	}
}
