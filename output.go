package ociclip

import (
	"bufio"
	"fmt"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
)

// checkOutput checks that the options name exactly one output.
func checkOutput(opts Options) error {
	switch {
	case opts.Output != nil && opts.OutputPath != "":
		return fmt.Errorf("%w: set OutputPath or Output, not both", ErrOptions)
	case opts.Output == nil && opts.OutputPath == "":
		return fmt.Errorf("%w: OutputPath is empty", ErrOptions)
	}
	return nil
}

// writeOutput writes the archive to Options.Output or, atomically, to
// Options.OutputPath.
func writeOutput(opts Options, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *archive.Extension) error {
	if opts.Output == nil {
		return archive.WriteFile(opts.OutputPath, nodes, info, ext)
	}
	bw := bufio.NewWriterSize(opts.Output, 1<<20)
	if err := archive.Encode(bw, nodes, info, ext); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	return nil
}
