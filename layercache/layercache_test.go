package layercache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/limits"
	"github.com/ociclip/ociclip/tarindex"
)

const gzipMT = "application/vnd.oci.image.layer.v1.tar+gzip"

var (
	layerOnce   sync.Once
	layerDigest digest.Digest
	layerResult *tarindex.Result
	layerErr    error
)

// layer indexes a small generated gzip layer (once) and returns its digest
// and a fresh decoded copy of the result.
func layer(t testing.TB) (digest.Digest, *tarindex.Result) {
	t.Helper()
	layerOnce.Do(func() { layerDigest, layerResult, layerErr = makeLayer() })
	if layerErr != nil {
		t.Fatal(layerErr)
	}
	b, err := encode("k", layerResult)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decode(b, "k")
	if err != nil {
		t.Fatal(err)
	}
	return layerDigest, r
}

func makeLayer() (digest.Digest, *tarindex.Result, error) {
	mt := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var entries []testimage.Entry
	entries = append(entries, testimage.Entry{Name: "etc/", Type: '5', Mode: 0o755, ModTime: mt})
	for i := range 50 {
		entries = append(entries, testimage.Entry{Name: fmt.Sprintf("etc/f%02d", i), Mode: 0o644, ModTime: mt,
			Body: bytes.Repeat([]byte(fmt.Sprintf("line %d\n", i)), 100*i)})
	}
	entries = append(entries, testimage.Entry{Name: "etc/link", Type: '2', Linkname: "f01", ModTime: mt})
	tb, err := testimage.TarBytes(entries)
	if err != nil {
		return "", nil, err
	}
	blob, err := testimage.Compress(tb, testimage.Gzip)
	if err != nil {
		return "", nil, err
	}
	r, err := tarindex.Index(context.Background(), bytes.NewReader(blob), tarindex.Options{MediaType: gzipMT, SpanBytes: 64 << 10})
	if err != nil {
		return "", nil, err
	}
	if len(r.ResumePoints) == 0 || len(r.Entries) != 52 {
		return "", nil, fmt.Errorf("test layer has %d resume points, %d entries", len(r.ResumePoints), len(r.Entries))
	}
	return digest.FromBytes(blob), r, nil
}

func key(t testing.TB, d digest.Digest, o tarindex.Options) Key {
	t.Helper()
	k, err := NewKey(d, gzipMT, o)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sameResult compares two results through their encoding (gob is blind to
// nil versus empty slices and keeps times' instants and offsets).
func sameResult(t *testing.T, got, want *tarindex.Result) {
	t.Helper()
	g, err := encode("k", got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := encode("k", want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("result differs after the round trip")
	}
	if got.DiffID != want.DiffID || len(got.Entries) != len(want.Entries) || got.Entries[3].Offset != want.Entries[3].Offset ||
		!got.Entries[3].ModTime.Equal(want.Entries[3].ModTime) || !bytes.Equal(got.ResumePoints[0].ZWindow, want.ResumePoints[0].ZWindow) {
		t.Errorf("got %+v\nwant %+v", got.Entries[3], want.Entries[3])
	}
}

func TestPutGet(t *testing.T) {
	d, r := layer(t)
	c, err := Open(filepath.Join(t.TempDir(), "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, d, tarindex.Options{SpanBytes: 64 << 10})
	if _, err := c.Get(k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on empty cache: %v, want ErrNotFound", err)
	}
	if err := c.Put(k, r); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, got, r)
	if !strings.HasPrefix(filepath.Base(c.Path(k)), "sha256-"+d.Encoded()+"-") {
		t.Errorf("entry name %s", c.Path(k))
	}
	// Put replaces; no temporary files stay behind.
	if err := c.Put(k, r); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(c.Dir())
	if len(ents) != 1 {
		t.Errorf("cache dir holds %v", ents)
	}
}

func TestKeys(t *testing.T) {
	d, _ := layer(t)
	base := key(t, d, tarindex.Options{})
	same := []tarindex.Options{
		{CheckpointMiB: tarindex.DefaultCheckpointMiB},
		{SpanBytes: tarindex.DefaultSpanBytes},
		{Limits: tarindex.Limits{MaxEntries: limits.DefaultMaxEntries, MaxPathLen: -1}},
		{Progress: func(tarindex.Progress) {}},
	}
	for _, o := range same {
		if k := key(t, d, o); k != base || k.String() != base.String() {
			t.Errorf("options %+v: key %v, want %v", o, k, base)
		}
	}
	if k, _ := NewKey(d, "application/vnd.docker.image.rootfs.diff.tar.gzip", tarindex.Options{}); k != base {
		t.Errorf("docker gzip media type gives %v", k)
	}
	if a, b := key(t, d, tarindex.Options{SpanBytes: -1}), key(t, d, tarindex.Options{SpanBytes: -7}); a != b {
		t.Errorf("negative spans differ: %v %v", a, b)
	}
	c := &Cache{dir: t.TempDir()}
	names := map[string]string{c.Path(base): "default"}
	for name, o := range map[string]tarindex.Options{
		"checkpoint": {CheckpointMiB: 1},
		"span":       {SpanBytes: 1 << 20},
		"no span":    {SpanBytes: -1},
		"entries":    {Limits: tarindex.Limits{MaxEntries: 10}},
		"path":       {Limits: tarindex.Limits{MaxPathLen: 100}},
		"size":       {Limits: tarindex.Limits{MaxUncompressedBytes: 1 << 20}},
	} {
		p := c.Path(key(t, d, o))
		if prev, dup := names[p]; dup {
			t.Errorf("%s and %s share entry %s", name, prev, p)
		}
		names[p] = name
	}
	for _, mt := range []string{"application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar", ""} {
		k, err := NewKey(d, mt, tarindex.Options{})
		if err != nil || c.Path(k) == c.Path(base) {
			t.Errorf("media type %q: %v, %v", mt, k, err)
		}
	}
	if _, err := NewKey("sha256:abc", gzipMT, tarindex.Options{}); !errors.Is(err, ErrKey) {
		t.Errorf("bad digest: %v", err)
	}
	if _, err := NewKey(d, "text/plain", tarindex.Options{}); !errors.Is(err, ErrKey) {
		t.Errorf("bad media type: %v", err)
	}
	if !strings.Contains(base.String(), "schema "+schema) || len(schema) != 16 {
		t.Errorf("key text %q", base.String())
	}
}

func TestCorruptEntries(t *testing.T) {
	d, r := layer(t)
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, d, tarindex.Options{SpanBytes: 64 << 10})
	other := key(t, d, tarindex.Options{SpanBytes: 64 << 10, CheckpointMiB: 1})
	if err := c.Put(k, r); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(c.Path(k))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(other, r); err != nil {
		t.Fatal(err)
	}
	otherBytes, _ := os.ReadFile(c.Path(other))
	klen := len(k.String())
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	cases := map[string][]byte{
		"empty":            {},
		"header only":      good[:headerLen],
		"truncated key":    good[:headerLen+klen/2],
		"truncated":        good[:len(good)-1],
		"half":             good[:len(good)/2],
		"trailing garbage": append(bytes.Clone(good), 0),
		"magic":            flip(0),
		"version":          flip(8),
		"key length":       flip(12),
		"payload length":   flip(16),
		"checksum":         flip(30),
		"key byte":         flip(headerLen + 5),
		"payload start":    flip(headerLen + klen),
		"payload middle":   flip(headerLen + klen + (len(good)-headerLen-klen)/2),
		"last byte":        flip(len(good) - 1),
		"wrong key":        otherBytes,
	}
	for name, b := range cases {
		if err := os.WriteFile(c.Path(k), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(k); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Get = %v, %v; want ErrCorrupt", name, got != nil, err)
		} else if !strings.Contains(err.Error(), c.Path(k)) {
			t.Errorf("%s: error does not name the entry: %v", name, err)
		}
		// Put rewrites a bad entry.
		if err := c.Put(k, r); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(k); err != nil {
			t.Errorf("%s: after Put: %v", name, err)
		}
	}
	// A payload that verifies but does not decode is still corrupt: an
	// entry written with a valid checksum over garbage.
	bad, err := encode(k.String(), r)
	if err != nil {
		t.Fatal(err)
	}
	payload := bad[headerLen+klen:]
	for i := range payload {
		payload[i] = byte(i)
	}
	sum := sha256.Sum256(append([]byte(k.String()), payload...))
	copy(bad[24:headerLen], sum[:])
	if err := os.WriteFile(c.Path(k), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(k); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "decoding") {
		t.Errorf("undecodable payload: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Open(f); err == nil {
		t.Error("Open(file) succeeded")
	}
	if _, err := Open(filepath.Join(f, "sub")); err == nil {
		t.Error("Open(file/sub) succeeded")
	}
	// Put into a directory that disappeared fails and leaves nothing.
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, r := layer(t)
	os.RemoveAll(dir)
	if err := c.Put(key(t, d, tarindex.Options{}), r); err == nil {
		t.Error("Put into a removed directory succeeded")
	}
	if err := c.Put(key(t, d, tarindex.Options{}), nil); err == nil {
		t.Error("Put(nil) succeeded")
	}
}

// Writers and readers of one entry, concurrently: a reader sees no entry or
// a complete one, never a torn one.
func TestConcurrentPutGet(t *testing.T) {
	d, r := layer(t)
	dir := t.TempDir()
	k := key(t, d, tarindex.Options{SpanBytes: 64 << 10})
	putGetConcurrently(t, k, r, func() (Store, error) {
		c, err := Open(dir) // one Cache per "process"
		return Dir{c}, err
	})
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("cache dir holds %d files", len(ents))
	}
}

// putGetConcurrently runs 6 workers, each with its own store from open:
// half of them Put r for k 10 times, the others Get k 10 times, and every
// Get must be a miss or the whole result.
func putGetConcurrently(t *testing.T, k Key, r *tarindex.Result, open func() (Store, error)) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := open()
			if err != nil {
				errs <- err
				return
			}
			for i := range 10 {
				if w%2 == 0 {
					if err := s.Put(ctx, k, r); err != nil {
						errs <- err
					}
					continue
				}
				got, err := s.Get(ctx, k)
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					errs <- fmt.Errorf("reader %d, read %d: %w", w, i, err)
				case got.DiffID != r.DiffID || len(got.Entries) != len(r.Entries):
					errs <- fmt.Errorf("reader %d got a different result", w)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkGet(b *testing.B) {
	d, r := layer(b)
	c, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	k := key(b, d, tarindex.Options{SpanBytes: 64 << 10})
	if err := c.Put(k, r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Get(k); err != nil {
			b.Fatal(err)
		}
	}
}
