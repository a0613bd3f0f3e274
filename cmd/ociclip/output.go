package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/ociclip/ociclip/archive"
)

// stdoutNames are the -o values that stream the archive to stdout.
var stdoutNames = []string{"-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"}

// output is where index writes the archive and its summary.
type output struct {
	path    string    // Options.OutputPath; "" when streaming
	stream  io.Writer // Options.Output; nil when writing path
	summary io.Writer // stdout, or stderr when the archive goes to stdout
	name    string    // for the summary
}

// outputFor interprets -o: "-" or /dev/stdout (and its /dev/fd/1,
// /proc/self/fd/1 spellings) streams the archive to stdout, not atomically,
// and moves the summary to stderr; anything else is a path written
// atomically.
func outputFor(o string, stdout, stderr io.Writer) output {
	for _, s := range stdoutNames {
		if o == s {
			return output{stream: stdout, summary: stderr, name: "stdout"}
		}
	}
	return output{path: o, summary: stdout, name: o}
}

// withOutputHint adds to an error refusing a special file as output how to
// write to stdout instead.
func withOutputHint(err error) error {
	if errors.Is(err, archive.ErrNotRegularOutput) {
		return fmt.Errorf("%w (ociclip replaces only regular files; -o - writes to stdout)", err)
	}
	return err
}
