package clipstorage

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrNoFUSE: this machine cannot mount FUSE file systems.
var ErrNoFUSE = errors.New("FUSE is unavailable")

// CheckFUSE returns an error wrapping ErrNoFUSE that says what is missing
// when /dev/fuse or fusermount3 (fusermount) is not there.
func CheckFUSE() error {
	var why []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = append(why, "/dev/fuse is missing (load the fuse module, or run the container with --device /dev/fuse)")
	}
	_, err3 := exec.LookPath("fusermount3")
	_, err2 := exec.LookPath("fusermount")
	if err3 != nil && err2 != nil {
		why = append(why, "fusermount3 is not in PATH (install fuse3)")
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: %s", ErrNoFUSE, strings.Join(why, "; "))
	}
	return nil
}

// Mount is a read-only FUSE mount of a Storage with clip's filesystem.
type Mount struct {
	Server *fuse.Server
	s      *Storage
	done   chan struct{}
}

// MountAt mounts s read-only at mountPoint with clip's filesystem
// (clip.NewFileSystem) and the FUSE options clip's MountArchive uses, and
// serves it in the background. Unmount ends it; Cleanup of s runs when the
// server stops.
func MountAt(s *Storage, mountPoint string) (*Mount, error) {
	if err := CheckFUSE(); err != nil {
		return nil, err
	}
	cfs, err := clip.NewFileSystem(s, clip.ClipFileSystemOpts{})
	if err != nil {
		return nil, fmt.Errorf("clip filesystem: %w", err)
	}
	root, err := cfs.Root()
	if err != nil {
		return nil, fmt.Errorf("clip filesystem root: %w", err)
	}
	timeout := 60 * time.Second
	server, err := fuse.NewServer(fs.NewNodeFS(root, &fs.Options{AttrTimeout: &timeout, EntryTimeout: &timeout}), mountPoint, &fuse.MountOptions{
		FsName:               "ociclip",
		Name:                 "ociclip",
		Options:              []string{"ro"},
		MaxBackground:        512,
		DisableXAttrs:        true,
		EnableSymlinkCaching: true,
		RememberInodes:       true,
		MaxReadAhead:         128 << 10,
	})
	if err != nil {
		return nil, fmt.Errorf("mounting %s: %w", mountPoint, err)
	}
	m := &Mount{Server: server, s: s, done: make(chan struct{})}
	go func() {
		server.Serve()
		s.Cleanup()
		close(m.done)
	}()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		<-m.done
		return nil, fmt.Errorf("mounting %s: %w", mountPoint, err)
	}
	return m, nil
}

// Done is closed when the server has stopped (after an unmount, by Unmount
// or by `fusermount3 -u`).
func (m *Mount) Done() <-chan struct{} { return m.done }

// Unmount unmounts and waits (at most timeout) for the server to stop.
func (m *Mount) Unmount(timeout time.Duration) error {
	err := m.Server.Unmount()
	select {
	case <-m.done:
		return err
	case <-time.After(timeout):
		return errors.Join(err, fmt.Errorf("FUSE server did not stop within %v", timeout))
	}
}
