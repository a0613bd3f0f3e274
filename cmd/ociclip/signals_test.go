package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A command stopped by a signal reports "interrupted" and exits as shells
// expect (128 + the signal), not "error: context canceled" with exit 1.
func TestInterruptedExitCode(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		msg  string
	}{{syscall.SIGINT, 130, "ociclip index: interrupted\n"}, {syscall.SIGTERM, 143, "ociclip index: interrupted by SIGTERM\n"}} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(&signalError{sig: tc.sig})
		out := filepath.Join(t.TempDir(), "x.clip")
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"index", "oci:" + busybox + ":1.35", "-o", out}, &stdout, &stderr)
		if code != tc.code || stderr.String() != tc.msg || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.sig, code, stdout.String(), stderr.String(), tc.code, tc.msg)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: output written (%v)", tc.sig, err)
		}
	}
}

// The real signals, sent to an ociclip process blocked opening its source
// (a FIFO): SIGINT exits 130, SIGTERM 143, each saying it was interrupted.
func TestSignalsEndProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "src.tar")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "index", "-q", "oci-archive:"+fifo, "-o", filepath.Join(dir, "x.clip"))
		cmd.Env = append(os.Environ(), "OCICLIP_TEST_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Signal once the process waits in open(2) for a writer: its
		// handlers are installed by then.
		if !waitFIFOOpen(cmd.Process.Pid, 20*time.Second) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%v: the process never blocked opening the FIFO (/proc/PID/task/*/wchan)", tc.sig)
		}
		if err := cmd.Process.Signal(tc.sig); err != nil {
			t.Fatal(err)
		}
		// Let it see the signal, then unblock the open.
		time.Sleep(100 * time.Millisecond)
		// Non-blocking: if the process died, there is no reader to wait for.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		// A process that ignored the signal would wait forever.
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		timer.Stop()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("%v: %v, stderr %q; want exit %d saying interrupted", tc.sig, err, stderr.String(), tc.code)
		}
		if es, _ := os.ReadDir(dir); len(es) != 1 {
			t.Errorf("%v: left %v", tc.sig, es)
		}
	}
}

// waitFIFOOpen waits until a thread of process pid sleeps in the kernel's
// FIFO open (wchan wait_for_partner).
func waitFIFOOpen(pid int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "wchan"))
		for _, w := range tasks {
			if b, err := os.ReadFile(w); err == nil && strings.Contains(string(b), "wait_for_partner") {
				return true
			}
		}
	}
	return false
}
