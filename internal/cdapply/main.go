// Command cdapply applies OCI layer tars with containerd's applier
// (github.com/containerd/containerd/v2/pkg/archive.Apply, the naive
// applier containerd uses to unpack image layers on Linux), for ociclip's
// differential tests (applier_test.go in the repository root). It lives in
// a module of its own so that containerd's dependencies stay out of
// ociclip's go.mod and build list.
//
// Usage:
//
//	cdapply ROOT LAYER.tar...   apply the layers in order into ROOT
//	cdapply -serve              read requests from stdin, one JSON object a
//	                            line: {"root": DIR, "layers": [TAR...]};
//	                            answer each with {"err": MESSAGE} ("" on
//	                            success) on stdout
//
// It must run as root to create files of other owners, as containerd does.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/log"
)

// request is one line of -serve's input.
type request struct {
	Root   string   `json:"root"`
	Layers []string `json:"layers"`
}

// response is one line of -serve's output.
type response struct {
	Err string `json:"err"`
}

func main() {
	// containerd logs ignored entries (warnings) through logrus: keep the
	// protocol's stdout clean and stderr quiet.
	log.L.Logger.SetOutput(io.Discard)
	if len(os.Args) == 2 && os.Args[1] == "-serve" {
		if err := serve(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "cdapply:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: cdapply ROOT LAYER.tar... | cdapply -serve")
		os.Exit(2)
	}
	if err := apply(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "cdapply:", err)
		os.Exit(1)
	}
}

// serve answers requests until its input ends.
func serve(in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var req request
		var resp response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("request: %w", err)
		}
		if err := apply(req.Root, req.Layers); err != nil {
			resp.Err = err.Error()
		}
		if err := enc.Encode(resp); err != nil {
			return err
		}
	}
	return sc.Err()
}

// apply applies the layer tars in order into root.
func apply(root string, layers []string) error {
	for i, p := range layers {
		if err := applyOne(root, p); err != nil {
			return fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return nil
}

func applyOne(root, layer string) error {
	f, err := os.Open(layer)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = archive.Apply(context.Background(), root, f)
	return err
}
