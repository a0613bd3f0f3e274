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
// Options.OutputPath (with the extension section in ExtensionOutputPath
// when that is set), and returns the sections' sizes.
func writeOutput(opts Options, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *archive.Extension) (ArchiveSize, error) {
	if opts.Output == nil {
		return archive.WriteFiles(opts.OutputPath, opts.ExtensionOutputPath, nodes, info, ext)
	}
	bw := bufio.NewWriterSize(opts.Output, 1<<20)
	sz, err := archive.EncodeSections(bw, nil, nodes, info, ext)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return sz, fmt.Errorf("writing the archive: %w", err)
	}
	return sz, nil
}
