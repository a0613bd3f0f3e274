package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/internal/testenv"
	"golang.org/x/sys/unix"
)

// openPty opens a new pseudo-terminal pair, as a fresh one is: 0x0.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testenv.Missing(t, "no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m, s
}

// On a terminal with no size (a 0x0 pty, as some CI runners and `script`
// give), auto progress falls back to lines instead of showing nothing; with
// a size it draws bars.
func TestProgressOnUnsizedTerminal(t *testing.T) {
	t.Setenv("TERM", "xterm")
	for _, cols := range []uint16{0, 100} {
		m, s := openPty(t)
		if cols > 0 {
			if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: cols}); err != nil {
				t.Fatal(err)
			}
		}
		var got bytes.Buffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(&got, m) // ends with EIO once the slave is closed
		}()
		out := filepath.Join(t.TempDir(), "x.clip")
		code := run(context.Background(), []string{"index", "oci:" + busybox + ":1.35", "-o", out, "--storage-ref", "docker.io/library/busybox:1.35"}, io.Discard, s)
		s.Close()
		<-done
		m.Close()
		text := got.String()
		if code != 0 {
			t.Fatalf("%d columns: exit %d: %s", cols, code, text)
		}
		lines := strings.Contains(text, l1+": indexing ") && strings.Contains(text, l3+": done, ")
		if cols == 0 && !lines {
			t.Errorf("0x0 terminal: want progress lines, got %q", text)
		}
		if cols > 0 && (lines || !strings.Contains(text, l1)) {
			t.Errorf("%d-column terminal: want bars, got %q", cols, text)
		}
	}
}
