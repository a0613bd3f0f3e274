// Package outfile writes an output file atomically, with the rules of
// ociclip's -o:
//
//   - a regular file, or nothing, at the path is replaced atomically: the
//     bytes go to a temporary file in the same directory, which is synced
//     and renamed over the path only when everything succeeded, so a failure
//     leaves the path as it was (a replaced file that had other hard links
//     is a new file afterwards: the other names keep the old content);
//   - a symlink is followed (a chain of them, up to 40): its final target is
//     replaced atomically, in the target's directory, and the link stays;
//   - a directory fails with an error wrapping syscall.EISDIR; a device
//     node, FIFO or socket with one wrapping ErrNotRegular: nothing but a
//     temporary file of ours is ever unlinked;
//   - a new file gets mode 0666 minus the umask (the kernel applies it when
//     the temporary file is created); a replaced file keeps its permission
//     bits and, where permitted (as root, or a group the user is in), its
//     owner and group.
package outfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotRegular: the output path (or a symlink's final target) is a device
// node, FIFO or socket, which ociclip refuses to replace.
var ErrNotRegular = errors.New("not a regular file")

// maxSymlinks bounds the chain of symlinks followed (as Linux's MAXSYMLINKS).
const maxSymlinks = 40

// Target returns the path that writing path replaces (path itself, or the
// final target of the symlinks at path) and what is there now (nil when
// nothing is). A directory, device node, FIFO or socket is an error.
func Target(path string) (string, fs.FileInfo, error) {
	p := path
	for hops := 0; ; hops++ {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("output: %w", err)
		}
		switch m := fi.Mode(); {
		case m.IsRegular():
			return p, fi, nil
		case m.IsDir():
			return "", nil, fmt.Errorf("output: %w", &fs.PathError{Op: "write", Path: p, Err: syscall.EISDIR})
		case m&fs.ModeSymlink == 0:
			return "", nil, fmt.Errorf("output %s is a %s: %w, refusing to replace it", p, kind(m), ErrNotRegular)
		}
		if hops == maxSymlinks {
			return "", nil, fmt.Errorf("output: %w", &fs.PathError{Op: "resolve", Path: path, Err: syscall.ELOOP})
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", nil, fmt.Errorf("output: %w", err)
		}
		if !strings.HasPrefix(t, "/") {
			// Not filepath.Join: cleaning "dir/../x" lexically is wrong
			// when dir is itself a symlink.
			t = dir(p) + "/" + t
		}
		p = t
	}
}

// kind names a file type for error messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file (" + m.Type().String() + ")"
}

// dir returns the directory part of p without cleaning it ("." for none).
func dir(p string) string {
	i := strings.LastIndexByte(p, '/')
	switch {
	case i < 0:
		return "."
	case i == 0:
		return "/"
	}
	return p[:i]
}

// File is an output being written: a temporary file next to the target.
// Call Commit to put it in place, or Abort to drop it.
type File struct {
	*os.File
	target   string
	existing fs.FileInfo
	done     bool
}

// Create starts writing the output at path (see the package comment for
// what it may replace). Errors from a missing directory wrap
// fs.ErrNotExist.
func Create(path string) (*File, error) {
	target, existing, err := Target(path)
	if err != nil {
		return nil, err
	}
	// A new file: 0666 less the umask, applied by the kernel. Replacing a
	// file: 0600 until Commit gives it the old file's mode, so that nobody
	// the old mode kept out can open it meanwhile.
	perm := fs.FileMode(0o666)
	if existing != nil {
		perm = 0o600
	}
	d, base := dir(target), target[strings.LastIndexByte(target, '/')+1:]
	for range 10000 {
		name := d + "/." + base + ".tmp-" + strconv.FormatUint(rand.Uint64(), 36)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating output: %w", err)
		}
		return &File{File: f, target: target, existing: existing}, nil
	}
	return nil, fmt.Errorf("creating output in %s: no unused temporary name", d)
}

// Target returns the path Commit replaces.
func (f *File) Target() string { return f.target }

// Commit syncs the temporary file, gives it the mode and owner of the file
// it replaces (if any) and renames it over the target. On an error the
// temporary file is removed and the target left as it was.
func (f *File) Commit() (err error) {
	if f.done {
		return errors.New("output already committed or aborted")
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err = f.keepAttrs(); err != nil {
		return err
	}
	if err = f.File.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	f.done = true
	if err = os.Rename(f.Name(), f.target); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("renaming %s to %s: %w", f.Name(), f.target, err)
	}
	return nil
}

// keepAttrs gives the temporary file the owner (where permitted) and the
// permission bits of the file it replaces. The mode is set last: chown
// clears setuid and setgid bits.
func (f *File) keepAttrs() error {
	if f.existing == nil {
		return nil
	}
	if st, ok := f.existing.Sys().(*syscall.Stat_t); ok {
		if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("chown %s: %w", f.Name(), err)
		}
	}
	m := f.existing.Mode()
	perm := m.Perm() | m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	return nil
}

// Abort closes and removes the temporary file; the target is untouched.
// It does nothing after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// Check tells early whether Create and Commit could write path: its kind is
// one that may be replaced and a temporary file can be created (and is
// removed at once) in the target's directory.
func Check(path string) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	f.Abort()
	return nil
}

// Write writes path atomically with what write writes to its argument.
// On any error path is left as it was.
func Write(path string, write func(io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
