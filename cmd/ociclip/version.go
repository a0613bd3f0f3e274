package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/ociclip/ociclip"
)

const versionUsage = `Usage: ociclip version [--json]

Print ociclip's module version ("(devel)" for a build from a checkout), the Go
version that built it, the clip version it targets, the versions of the
formats it writes and the URL schemes index --cache opens in this build
(gs:// only with -tags ociclip_gcs).
`

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", versionUsage, stdout)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	v := ociclip.Version()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	fmt.Fprintf(stdout, "ociclip %s\n", v.Version)
	fmt.Fprintf(stdout, "module:         %s\n", v.Module)
	fmt.Fprintf(stdout, "go:             %s %s/%s\n", v.GoVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "clip:           %s %s\n", v.ClipModule, v.ClipVersion)
	fmt.Fprintf(stdout, "archive format: clip v2 (header version %d), ociclip extension section version %d\n", v.ClipFormatVersion, v.ExtensionVersion)
	fmt.Fprintf(stdout, "layer cache:    format version %d; --cache URLs: %s\n", v.CacheFormatVersion, strings.Join(cacheSchemes(), " "))
	return nil
}
