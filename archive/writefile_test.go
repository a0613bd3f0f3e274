package archive

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/beam-cloud/clip/pkg/common"
)

// TestWriteFileOutputErrors: an output path that is a directory, or whose
// directory is missing, fails with an error callers can test (EISDIR,
// fs.ErrNotExist) and leaves nothing behind.
func TestWriteFileOutputErrors(t *testing.T) {
	nodes := []*common.ClipNode{{Path: "/", NodeType: common.DirNode}}
	dir := t.TempDir()
	if err := WriteFile(dir, nodes, &common.OCIStorageInfo{}, nil); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("directory: %v, want EISDIR", err)
	}
	missing := filepath.Join(dir, "missing", "a.clip")
	if err := WriteFile(missing, nodes, &common.OCIStorageInfo{}, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want fs.ErrNotExist", err)
	}
	if es, err := os.ReadDir(dir); err != nil || len(es) != 0 {
		t.Errorf("left %v (%v)", es, err)
	}
	ok := filepath.Join(dir, "a.clip")
	if err := WriteFile(ok, nodes, &common.OCIStorageInfo{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(ok); err != nil {
		t.Fatal(err)
	}
}
