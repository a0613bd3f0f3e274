// Command ociclip turns a local OCI image layout into beam-cloud/clip v2
// metadata and inspects the result.
//
//	ociclip index SOURCE -o|--output OUT.clip|- [--ref REF] [--storage-ref REF] [--platform os/arch[/variant]]
//	                     [--cache-dir DIR] [--progress MODE] [--log-level LEVEL] [--json] [-q] [limits]
//	ociclip inspect OUT.clip [--json]
//	ociclip ls OUT.clip [PATH] [-l] [-R]
//	ociclip cat OUT.clip PATH --layout oci:DIR [--offset N] [--length N] [-o FILE]
//	ociclip verify OUT.clip --layout oci:DIR
//	ociclip mount OUT.clip MOUNTPOINT [--layout SOURCE] [--registry REF] [--cache-dir DIR] [--cache-size SIZE]
//	ociclip diff A.clip B.clip [--json]
//	ociclip version [--json]
//
// Run `ociclip help`, `ociclip help COMMAND` or `ociclip COMMAND --help` for
// details. Exit status: 0 success, 1 failure, 2 usage error (diff: 1 when
// the archives differ), 130 on SIGINT and 143 on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errUsage marks errors that are the caller's words being off (exit 2).
var errUsage = errors.New("usage")

// exitError ends a command with a given exit code; its message (if any) is
// printed as an error.
type exitError struct {
	code int
	err  error // nil: exit silently
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"index", "index a local OCI layout into a .clip archive", runIndex},
		{"inspect", "print a .clip archive's header, storage info and counts", runInspect},
		{"ls", "list the nodes of a .clip archive", runLs},
		{"cat", "print a file of the image, read through the index from the layout", runCat},
		{"verify", "check every file read through the index against a sequential replay", runVerify},
		{"mount", "mount the image read-only with clip's FUSE filesystem, reading through the index", runMount},
		{"diff", "compare the nodes of two .clip archives (exit 1 when they differ)", runDiff},
		{"version", "print ociclip's version, the clip version it targets and its formats", runVersion},
	}
}

const mainUsage = `ociclip turns a local OCI image layout (what "skopeo copy docker://IMG oci:DIR:TAG"
writes) into beam-cloud/clip v2 metadata: a .clip file that lists every file of the
merged image with the layer and offset of its bytes in that layer's uncompressed tar
stream, so that clip's FUSE filesystem can serve the image lazily.

Usage:
  ociclip COMMAND [ARGS]

Commands:
`

// run executes the command line and returns the exit code: 0 on success, 1
// on failure, 2 on a usage error, 128 + the signal's number when a SIGINT or
// SIGTERM (see signalContext) stopped the command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" {
		// "ociclip help COMMAND" is "ociclip COMMAND --help".
		args = []string{args[1], "--help"}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprint(w, mainUsage)
		for _, c := range commands() {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		}
		fmt.Fprint(w, "\nRun 'ociclip COMMAND --help' for a command's options.\n")
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		if code, ok := interrupted(ctx, err, stderr, c.name); ok {
			return code
		}
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ee):
			switch {
			case ee.err == nil:
			case errors.Is(ee.err, errUsage):
				usageError(stderr, c.name, ee.err)
			default:
				fmt.Fprintf(stderr, "ociclip %s: error: %v\n", c.name, oneLine(ee.err))
			}
			return ee.code
		case errors.Is(err, errUsage):
			usageError(stderr, c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "ociclip %s: error: %v\n", c.name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "ociclip: unknown command %q (run 'ociclip help')\n", args[0])
	return 2
}

// usageError prints a usage error: one line naming the problem and where
// the command's help is.
func usageError(w io.Writer, cmd string, err error) {
	msg := strings.TrimPrefix(oneLine(err), errUsage.Error()+": ")
	fmt.Fprintf(w, "ociclip %s: %s; see 'ociclip %s --help'\n", cmd, msg, cmd)
}

// oneLine keeps an error message on one line.
func oneLine(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// parseArgs parses flags that may stand before, between or after the
// positional arguments, and returns the positional arguments. -h and --help
// print the flag set's help (on stdout, see newFlagSet) and return
// flag.ErrHelp; a bad flag returns an errUsage error of one line.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	// flag calls Usage on every parse error too: help only for -h.
	help := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = help }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				help()
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlagSet returns a flag set whose help (its Usage: the usage text and
// the flags) goes to stdout; parse errors are returned, not printed.
func newFlagSet(name, usage string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout, "\nOptions:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}
