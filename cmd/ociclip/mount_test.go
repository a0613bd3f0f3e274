package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociclip/ociclip/clipstorage"
	"github.com/ociclip/ociclip/internal/fusetest"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testenv"
)

// TestMountCommand mounts testdata's busybox with `ociclip mount`, from
// the layout (--layout) and from the registry the archive names, reads a
// file through the mount, then cancels the context (what SIGINT and SIGTERM
// do in main) and expects a clean unmount and exit status 0.
func TestMountCommand(t *testing.T) {
	if err := clipstorage.CheckFUSE(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // the loopback registry is anonymous
	reg := registrytest.StartWith(t, registrytest.Options{Range: true})
	ref := reg.PushLayout(t, "../../testdata/busybox", "1.35", "test/busybox:1.35")
	out := filepath.Join(t.TempDir(), "bb.clip")
	if code, _, stderr := runCLI(t, "index", "oci:../../testdata/busybox:1.35", "-o", out, "-q", "--storage-ref", ref); code != 0 {
		t.Fatalf("index: %d: %s", code, stderr)
	}
	t.Run("layout", func(t *testing.T) {
		mountAndRead(t, out, "--layout", "oci:../../testdata/busybox", "--cache-size", "8M")
	})
	t.Run("registry", func(t *testing.T) {
		before := reg.BlobBytes("")
		mountAndRead(t, out, "--cache-dir", t.TempDir())
		if reg.BlobBytes("") == before {
			t.Error("no blob bytes fetched from the registry")
		}
	})
}

func mountAndRead(t *testing.T, out string, flags ...string) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"mount", out, mnt}, flags...), &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !fusetest.IsMounted(mnt) {
		select {
		case code := <-done:
			t.Fatalf("mount exited %d before mounting: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not mounted after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fusetest.DisablePoll(t, mnt)
	b, err := os.ReadFile(filepath.Join(mnt, "etc/group"))
	if err != nil || !strings.Contains(string(b), "root:x:0:") {
		t.Errorf("reading etc/group on the mount: %q, %v", b, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mount did not return after the context was cancelled")
	}
	if fusetest.IsMounted(mnt) {
		t.Errorf("%s still mounted", mnt)
	}
	if !strings.Contains(stderr.String(), "unmounted") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestMountUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"mount"},
		{"mount", "a.clip"},
		{"mount", "a.clip", "/mnt", "--layout", "oci:x", "--registry", "r/x"},
		{"mount", "a.clip", "/mnt", "--cache-size", "lots"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}
