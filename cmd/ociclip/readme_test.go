package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeSynopsis returns the README's command-line synopsis: for each
// command, its line and continuation lines.
func readmeSynopsis(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Command line\n\n```\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no synopsis block under ## Command line")
	}
	syn := map[string]string{}
	cmd := ""
	for _, line := range strings.Split(block, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "ociclip" {
			cmd = f[1]
		}
		syn[cmd] += line + "\n"
	}
	return syn
}

// The README's synopsis names every command and every flag each command
// accepts (it lacked --ref and --output), taken from the commands' own help.
func TestReadmeSynopsisListsEveryFlag(t *testing.T) {
	syn := readmeSynopsis(t)
	flagLine := regexp.MustCompile(`(?m)^  -(\S+)`)
	for _, c := range commands() {
		text, ok := syn[c.name]
		if !ok {
			t.Errorf("README synopsis lacks ociclip %s", c.name)
			continue
		}
		_, help, _ := runCLI(t, c.name, "--help")
		for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
			name := m[1]
			re := regexp.MustCompile(`(^|[\s\[|])--?` + regexp.QuoteMeta(name) + `([\s\]|=]|$)`)
			if !re.MatchString(text) {
				t.Errorf("README synopsis of %s lacks -%s:\n%s", c.name, name, text)
			}
		}
	}
	if _, ok := syn["help"]; !ok {
		t.Error("README synopsis lacks ociclip help")
	}
}
