package layercache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	_ "gocloud.dev/blob/fileblob" // file:// URLs in tests
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs of the test server
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/internal/s3test"
	"github.com/ociclip/ociclip/tarindex"
)

// TestMain lets TestBlobKilledWriter run this binary as a writer process:
// with LAYERCACHE_TEST_WRITER set to a bucket URL it uploads one large
// entry (bigEntry) and exits.
func TestMain(m *testing.M) {
	if u := os.Getenv("LAYERCACHE_TEST_WRITER"); u != "" {
		b, err := OpenBlob(context.Background(), u, BlobOptions{Timeout: time.Minute})
		if err == nil {
			k, r := bigEntry()
			err = b.Put(context.Background(), k, r)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// bigEntry returns a key and a result whose entry is about 32 MiB of
// incompressible data.
func bigEntry() (Key, *tarindex.Result) {
	k, _ := NewKey(digest.FromString("big"), gzipMT, tarindex.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	r := &tarindex.Result{DiffID: digest.FromString("big diff"), ChunkCRCs: make([]uint32, 8<<20)}
	for i := range r.ChunkCRCs {
		r.ChunkCRCs[i] = rng.Uint32()
	}
	return k, r
}

// openS3 starts gofakes3 on 127.0.0.1 and opens a client of its bucket.
func openS3(t *testing.T, o BlobOptions) (*s3test.Server, *Blob) {
	t.Helper()
	srv := s3test.Start(t)
	srv.SetEnv(t)
	return srv, openBlob(t, srv.URL(), o)
}

func openBlob(t *testing.T, u string, o BlobOptions) *Blob {
	t.Helper()
	b, err := OpenBlob(context.Background(), u, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBlobPutGet(t *testing.T) {
	d, r := layer(t)
	ctx := context.Background()
	srv, b := openS3(t, BlobOptions{})
	k := key(t, d, tarindex.Options{SpanBytes: 64 << 10})
	if _, err := b.Get(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing entry: %v, want ErrNotFound", err)
	}
	if err := b.Put(ctx, k, r); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, got, r)
	if n := srv.Count("PUT", "/"+s3test.Bucket+"/"+k.name()); n != 1 {
		t.Errorf("%d PUTs of the entry, want 1: %v", n, srv.Requests())
	}
	if loc := b.Location(k); loc != "s3://"+s3test.Bucket+"/"+k.name() {
		t.Errorf("Location = %s", loc)
	}
	// A directory cache and a bucket hold the same bytes under the same name.
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(k, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, k.name())); err != nil {
		t.Error(err)
	}
}

// A corrupt, truncated or foreign object is ErrCorrupt (a miss), never a
// result; Put replaces it.
func TestBlobCorruptAndForeignEntries(t *testing.T) {
	d, r := layer(t)
	ctx := context.Background()
	_, b := openS3(t, BlobOptions{MaxEntryBytes: 1 << 20})
	k := key(t, d, tarindex.Options{})
	other := key(t, d, tarindex.Options{CheckpointMiB: 4})
	good, err := encode(k.String(), r)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := encode(other.String(), r)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1
	for name, data := range map[string][]byte{
		"garbage":   []byte("not an entry"),
		"truncated": good[:len(good)-10],
		"flipped":   flipped,
		"foreign":   foreign,
		"too large": make([]byte, 1<<20+1),
	} {
		if err := b.bucket.WriteAll(ctx, k.name(), data, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Get(ctx, k); !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("%s: Get = %v, %v; want ErrCorrupt", name, got, err)
		}
	}
	if err := b.Put(ctx, k, r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, k); err != nil {
		t.Errorf("after Put: %v", err)
	}
}

// Writers and readers of one key on two clients of one bucket: every Get
// is a miss or the whole entry.
func TestBlobConcurrentWriters(t *testing.T) {
	d, r := layer(t)
	srv, _ := openS3(t, BlobOptions{})
	k := key(t, d, tarindex.Options{SpanBytes: 64 << 10})
	putGetConcurrently(t, k, r, func() (Store, error) {
		return OpenBlob(context.Background(), srv.URL(), BlobOptions{}) // one client per "worker"
	})
}

// A writer process killed in the middle of its upload leaves nothing that
// a reader gets back: the server has read 1 MiB of the 32 MiB entry when
// the writer is killed, far more than the socket buffers can still hold.
func TestBlobKilledWriter(t *testing.T) {
	srv, b := openS3(t, BlobOptions{})
	writer := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LAYERCACHE_TEST_WRITER="+srv.URL())
		cmd.Env = append(cmd.Env, s3test.Env()...)
		return cmd
	}
	cmd := writer()
	exited := make(chan error, 1)
	killed := make(chan int64, 1)
	srv.SetHook(func(r *http.Request) {
		if r.Method != http.MethodPut {
			return
		}
		head := make([]byte, 1<<20)
		n, _ := io.ReadFull(r.Body, head)
		cmd.Process.Kill()
		<-exited // dead: what it had not handed to its socket is gone
		killed <- int64(n)
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head[:n]), r.Body))
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited <- cmd.Wait()
	var n int64
	select {
	case n = <-killed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the writer was not killed mid-upload; requests: %v", srv.Requests())
	}
	if n != 1<<20 {
		t.Fatalf("the server had read %d bytes of the upload when the writer was killed", n)
	}
	k, _ := bigEntry()
	got, err := b.Get(context.Background(), k)
	if got != nil || !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("after the killed writer: Get = %v, %v; want a miss", got != nil, err)
	}
	t.Logf("after the killed writer: %v", err)
	// The same upload, not killed, does create the entry.
	srv.SetHook(nil)
	if out, err := writer().CombinedOutput(); err != nil {
		t.Fatalf("writer: %v\n%s", err, out)
	}
	if got, err := b.Get(context.Background(), k); err != nil || len(got.ChunkCRCs) != 8<<20 {
		t.Fatalf("after a complete upload: %v", err)
	}
}

// A cache that is down, or slower than the timeout, is ErrUnavailable
// within about the timeout.
func TestBlobUnavailable(t *testing.T) {
	d, r := layer(t)
	k := key(t, d, tarindex.Options{})
	ctx := context.Background()
	srv, b := openS3(t, BlobOptions{Timeout: 300 * time.Millisecond})
	srv.SetDelay(2 * time.Second)
	start := time.Now()
	if _, err := b.Get(ctx, k); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get from a slow server: %v, want ErrUnavailable", err)
	}
	if err := b.Put(ctx, k, r); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put to a slow server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("two operations took %v with a 300ms timeout", d)
	}
	srv.SetDelay(0)
	srv.Close()
	if _, err := b.Get(ctx, k); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get from a stopped server: %v, want ErrUnavailable", err)
	}
	if err := b.Put(ctx, k, r); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put to a stopped server: %v, want ErrUnavailable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Get(cctx, k); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with a cancelled context: %v, want context.Canceled", err)
	}
}

// OpenURL: a path is a directory cache, a URL a bucket (file:// here).
func TestOpenURL(t *testing.T) {
	d, r := layer(t)
	ctx := context.Background()
	k := key(t, d, tarindex.Options{})
	dir := t.TempDir()
	s, err := OpenURL(ctx, filepath.Join(dir, "c"), BlobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(Dir); !ok {
		t.Errorf("OpenURL(path) = %T, want Dir", s)
	}
	fdir := filepath.Join(dir, "f")
	if err := os.Mkdir(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = OpenURL(ctx, "file://"+fdir, BlobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Blob); !ok {
		t.Fatalf("OpenURL(file://) = %T, want *Blob", s)
	}
	if err := s.Put(ctx, k, r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, k); err != nil {
		t.Fatal(err)
	} else {
		sameResult(t, got, r)
	}
	for _, u := range []string{"nosuch://bucket", "://bucket"} {
		if _, err := OpenURL(ctx, u, BlobOptions{}); err == nil || !strings.Contains(err.Error(), u) {
			t.Errorf("OpenURL(%s) = %v", u, err)
		}
	}
}
