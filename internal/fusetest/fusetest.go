// Package fusetest holds what tests and benchmarks that are their own FUSE
// server need around a mount: the go-fuse poll hack done synchronously,
// and a mountinfo check.
package fusetest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// DisablePoll does go-fuse's "epoll hack" synchronously, before the test
// opens any file on the mount through package os.
//
// The test process is also the FUSE server. Package os registers every file
// it opens with the runtime's epoll instance; for a FUSE file the kernel
// then sends FUSE_POLL and epoll_ctl waits for the answer while its thread
// keeps a P. With GOMAXPROCS=2 and a read in flight, no goroutine may be
// left to answer and the process wedges. go-fuse answers one early
// FUSE_POLL with ENOSYS, after which the kernel sends no other; this does
// that with raw syscalls (no epoll) before the mount is touched.
func DisablePoll(t testing.TB, mnt string) {
	t.Helper()
	fd, err := syscall.Open(filepath.Join(mnt, ".go-fuse-epoll-hack"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening go-fuse's poll hack file on %s: %v", mnt, err)
	}
	defer syscall.Close(fd)
	pfd := struct {
		fd              int32
		events, revents int16
	}{fd: int32(fd), events: 0x1 | 0x2 | 0x4} // POLLIN|POLLPRI|POLLOUT
	var zero syscall.Timespec
	// ppoll exists on every Linux architecture (poll does not on arm64).
	if _, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0); errno != 0 {
		t.Fatalf("ppoll on go-fuse's poll hack file: %v", errno)
	}
}

// IsMounted reports whether dir is a mount point, from /proc/self/mountinfo.
func IsMounted(dir string) bool {
	_, ok := mountinfo(dir)
	return ok
}

// MountDevice returns the "major:minor" of the file system mounted at dir,
// or "".
func MountDevice(dir string) string {
	f, _ := mountinfo(dir)
	if len(f) > 2 {
		return f[2]
	}
	return ""
}

// mountinfo returns the fields of dir's line in /proc/self/mountinfo.
func mountinfo(dir string) ([]string, bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, false
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && r.Replace(f[4]) == dir {
			return f, true
		}
	}
	return nil, false
}
