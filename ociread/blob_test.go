package ociread

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestVerifierStreaming drives the verifying reader over in-memory sources,
// including ones OpenBlob's open-time size check would catch earlier.
func TestVerifierStreaming(t *testing.T) {
	content := []byte(strings.Repeat("0123456789", 100))
	good := v1.Descriptor{Digest: digest.FromBytes(content), Size: int64(len(content))}
	other := []byte(strings.Repeat("9876543210", 100))
	sha512d := digest.Digest(fmt.Sprintf("sha512:%x", sha512.Sum512(content)))
	cases := []struct {
		name    string
		desc    v1.Descriptor
		src     func() io.Reader
		wantErr error // nil => io.EOF after all content
		wantN   int   // bytes returned before the error (-1: don't check)
		msg     []string
	}{
		{name: "ok", desc: good, src: func() io.Reader { return bytes.NewReader(content) }, wantN: len(content)},
		{name: "ok one byte at a time", desc: good, src: func() io.Reader { return iotest.OneByteReader(bytes.NewReader(content)) }, wantN: len(content)},
		{name: "ok data with EOF", desc: good, src: func() io.Reader { return iotest.DataErrReader(bytes.NewReader(content)) }, wantN: len(content)},
		{name: "ok sha512", desc: v1.Descriptor{Digest: sha512d, Size: good.Size}, src: func() io.Reader { return bytes.NewReader(content) }, wantN: len(content)},
		{name: "ok empty", desc: v1.Descriptor{Digest: digest.FromBytes(nil)}, src: func() io.Reader { return bytes.NewReader(nil) }},
		{name: "short", desc: good, src: func() io.Reader { return bytes.NewReader(content[:700]) }, wantErr: ErrSizeMismatch, wantN: 700,
			msg: []string{"1000 bytes", "after 700 bytes", string(good.Digest), "/p/blob"}},
		{name: "short one byte at a time", desc: good, src: func() io.Reader { return iotest.OneByteReader(bytes.NewReader(content[:1])) }, wantErr: ErrSizeMismatch, wantN: 1},
		{name: "empty but size given", desc: good, src: func() io.Reader { return bytes.NewReader(nil) }, wantErr: ErrSizeMismatch, wantN: 0},
		{name: "long", desc: good, src: func() io.Reader { return bytes.NewReader(append(append([]byte{}, content...), 'x')) }, wantErr: ErrSizeMismatch, wantN: len(content),
			msg: []string{"1000 bytes", "more", string(good.Digest), "/p/blob"}},
		{name: "long with empty descriptor", desc: v1.Descriptor{Digest: digest.FromBytes(nil)}, src: func() io.Reader { return strings.NewReader("x") }, wantErr: ErrSizeMismatch, wantN: 0},
		{name: "digest mismatch", desc: good, src: func() io.Reader { return bytes.NewReader(other) }, wantErr: ErrDigestMismatch, wantN: len(other),
			msg: []string{"expected " + string(good.Digest), "actual " + string(digest.FromBytes(other)), "/p/blob"}},
		{name: "digest mismatch sha512", desc: v1.Descriptor{Digest: sha512d, Size: good.Size}, src: func() io.Reader { return bytes.NewReader(other) }, wantErr: ErrDigestMismatch, wantN: -1,
			msg: []string{"actual sha512:"}},
		{name: "source error", desc: good, src: func() io.Reader { return iotest.TimeoutReader(iotest.HalfReader(bytes.NewReader(content))) }, wantErr: iotest.ErrTimeout, wantN: -1,
			msg: []string{string(good.Digest), "/p/blob"}},
	}
	for _, tc := range cases {
		for _, bufSize := range []int{1, 7, 512, 4096} {
			t.Run(fmt.Sprintf("%s/buf%d", tc.name, bufSize), func(t *testing.T) {
				v := newVerifier(tc.src(), tc.desc, "/p/blob", false)
				var got []byte
				buf := make([]byte, bufSize)
				var err error
				for i := 0; i < 100000; i++ {
					var n int
					n, err = v.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						break
					}
				}
				if tc.wantErr == nil {
					if err != io.EOF {
						t.Fatalf("err = %v, want io.EOF", err)
					}
					if !bytes.Equal(got, content[:tc.desc.Size]) {
						t.Fatalf("content differs")
					}
				} else if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if tc.wantN >= 0 && len(got) != tc.wantN {
					t.Errorf("returned %d bytes, want %d", len(got), tc.wantN)
				}
				for _, s := range tc.msg {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				// Errors are sticky, and so is io.EOF.
				if n, err2 := v.Read(buf); n != 0 || err2 != err {
					t.Errorf("second read after error: %d, %v", n, err2)
				}
				if n, err := v.Read(nil); n != 0 || err == nil {
					t.Errorf("zero-length read after end: %d, %v", n, err)
				}
			})
		}
	}
}

func TestVerifierNoEOFBeforeCheck(t *testing.T) {
	content := []byte("hello")
	desc := v1.Descriptor{Digest: digest.FromBytes([]byte("HELLO")), Size: 5}
	_, err := io.ReadAll(newVerifier(bytes.NewReader(content), desc, "p", false))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("ReadAll: %v", err)
	}
	// io.ReadFull of exactly the size succeeds (no EOF seen yet); the next
	// read reports the mismatch, never io.EOF.
	v := newVerifier(bytes.NewReader(content), desc, "p", false)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(v, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(buf); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("read at end: %v", err)
	}
}

func TestOpenBlobAndReadBlob(t *testing.T) {
	b := newLayout(t)
	content := []byte("some blob content")
	d := b.blob(content)
	empty := b.blob(nil)
	big := b.blob(bytes.Repeat([]byte("z"), 100))
	s512 := v1.Descriptor{Digest: digest.Digest(fmt.Sprintf("sha512:%x", sha512.Sum512(content))), Size: int64(len(content))}
	b.file(filepath.Join("blobs", "sha512", s512.Digest.Encoded()), content)
	fifo := v1.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("f", 64)), Size: 1}
	if err := syscall.Mkfifo(b.path(fifo.Digest), 0o644); err != nil {
		t.Fatal(err)
	}
	mismatch := v1.Descriptor{Digest: digest.FromBytes([]byte("other content!!!!")), Size: int64(len(content))}
	b.file(filepath.Join("blobs", "sha256", mismatch.Digest.Encoded()), content)
	l := b.open(OpenOptions{})

	cases := []struct {
		name    string
		desc    v1.Descriptor
		max     int64
		wantErr error
		msg     []string
	}{
		{name: "ok", desc: d, max: 100},
		{name: "ok exactly max", desc: d, max: d.Size},
		{name: "ok empty", desc: empty, max: 0},
		{name: "ok sha512", desc: s512, max: 100},
		{name: "over max", desc: big, max: 99, wantErr: ErrLimit, msg: []string{"100 bytes", "MaxJSONBytes 99", string(big.Digest)}},
		{name: "negative max", desc: d, max: -1, wantErr: ErrLimit},
		{name: "missing", desc: v1.Descriptor{Digest: digest.FromBytes([]byte("absent")), Size: 6}, max: 100, wantErr: ErrBlobMissing,
			msg: []string{digest.FromBytes([]byte("absent")).Encoded()}},
		{name: "fifo", desc: fifo, max: 100, wantErr: ErrBlobMissing, msg: []string{"not a regular file"}},
		{name: "file shorter", desc: v1.Descriptor{Digest: d.Digest, Size: d.Size + 1}, max: 100, wantErr: ErrSizeMismatch,
			msg: []string{fmt.Sprint(d.Size), fmt.Sprint(d.Size + 1), string(d.Digest), b.path(d.Digest)}},
		{name: "file longer", desc: v1.Descriptor{Digest: d.Digest, Size: d.Size - 1}, max: 100, wantErr: ErrSizeMismatch},
		{name: "digest mismatch", desc: mismatch, max: 100, wantErr: ErrDigestMismatch,
			msg: []string{"expected " + string(mismatch.Digest), "actual " + string(d.Digest), b.path(mismatch.Digest)}},
		{name: "traversal", desc: v1.Descriptor{Digest: "sha256:../../etc/passwd", Size: 1}, max: 100, wantErr: ErrInvalidDigest},
		{name: "negative size", desc: v1.Descriptor{Digest: d.Digest, Size: -1}, max: 100, wantErr: ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := l.ReadBlob(tc.desc, tc.max)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadBlob: %v", err)
				}
				if int64(len(data)) != tc.desc.Size {
					t.Fatalf("ReadBlob returned %d bytes", len(data))
				}
				rc, err := l.OpenBlob(tc.desc)
				if err != nil {
					t.Fatalf("OpenBlob: %v", err)
				}
				all, err := io.ReadAll(rc)
				if err != nil || !bytes.Equal(all, data) {
					t.Fatalf("OpenBlob read: %v", err)
				}
				if err := rc.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadBlob error = %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestBlobPath(t *testing.T) {
	l := &Layout{dir: "/l"}
	hex64 := strings.Repeat("ab", 32)
	cases := []struct {
		d    digest.Digest
		want string // "" => ErrInvalidDigest
	}{
		{"sha256:" + digest.Digest(hex64), "/l/blobs/sha256/" + hex64},
		{"sha512:" + digest.Digest(hex64+hex64), "/l/blobs/sha512/" + hex64 + hex64},
		{"", ""},
		{"sha256", ""},
		{"sha256:", ""},
		{":" + digest.Digest(hex64), ""},
		{"sha256:../../etc/passwd", ""},
		{"sha256:" + digest.Digest(hex64[:62]) + "/.", ""},
		{"sha256:" + digest.Digest(strings.ToUpper(hex64)), ""},
		{"sha256:" + digest.Digest(hex64) + "0", ""},
		{"sha512:" + digest.Digest(hex64), ""},
		{"sha384:" + digest.Digest(hex64+hex64[:32]), ""},
		{"../sha256:" + digest.Digest(hex64), ""},
		{"sha256:" + digest.Digest(hex64[:63]) + "\x00", ""},
	}
	for _, tc := range cases {
		got, err := l.BlobPath(tc.d)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("BlobPath(%q) = %q, %v; want ErrInvalidDigest", tc.d, got, err)
			}
			continue
		}
		if err != nil || got != filepath.FromSlash(tc.want) {
			t.Errorf("BlobPath(%q) = %q, %v; want %q", tc.d, got, err, tc.want)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	cases := []struct {
		in, want string // want "" => error
	}{
		{"linux/amd64", "linux/amd64"},
		{"linux/arm64/v8", "linux/arm64/v8"},
		{"Linux/ARM/v7", "linux/arm/v7"},
		{"linux/x86_64", "linux/amd64"},
		{"linux/aarch64", "linux/arm64"},
		{" linux/amd64 ", "linux/amd64"},
		{"linux", ""},
		{"", ""},
		{"linux/", ""},
		{"/amd64", ""},
		{"linux/arm/v7/x", ""},
		{"linux//v7", ""},
		{"linux/ amd64", ""},
	}
	for _, tc := range cases {
		p, err := ParsePlatform(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidPlatform) {
				t.Errorf("ParsePlatform(%q) = %+v, %v; want ErrInvalidPlatform", tc.in, p, err)
			}
			continue
		}
		if err != nil || FormatPlatform(p) != tc.want {
			t.Errorf("ParsePlatform(%q) = %s, %v; want %s", tc.in, FormatPlatform(p), err, tc.want)
		}
	}
}

func TestMatchRank(t *testing.T) {
	cases := []struct {
		want, have string
		match      bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"linux/amd64", "linux/amd64/v1", true},
		{"linux/amd64", "linux/amd64/v3", false},
		{"linux/amd64/v3", "linux/amd64/v3", true},
		{"linux/amd64", "windows/amd64", false},
		{"linux/amd64", "linux/arm64", false},
		{"linux/arm64", "linux/arm64", true},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/arm64", true},
		{"linux/arm64/v8", "linux/arm64/v9", false},
		{"linux/arm64", "linux/arm64/v9", false},
		{"linux/arm", "linux/arm/v7", true},
		{"linux/arm", "linux/arm", true},
		{"linux/arm", "linux/arm/v6", true},
		{"linux/arm", "linux/arm/v8", false},
		{"linux/arm/v6", "linux/arm/v7", false},
		{"linux/arm/v7", "linux/arm", true},
		{"linux/riscv64", "linux/riscv64/rva22u64", true},
		{"linux/amd64", "linux/x86_64", true},
		{"linux/arm", "linux/arm/vx", false},
	}
	for _, tc := range cases {
		want, _ := ParsePlatform(tc.want)
		h := strings.Split(tc.have, "/")
		have := v1.Platform{OS: h[0], Architecture: h[1]}
		if len(h) > 2 {
			have.Variant = h[2]
		}
		if got := matchRank(want, have) > 0; got != tc.match {
			t.Errorf("match(%s, %s) = %v, want %v", tc.want, tc.have, got, tc.match)
		}
	}
	// Preferences when no variant is wanted.
	arm, _ := ParsePlatform("linux/arm")
	r := func(s string) int { p, _ := ParsePlatform(s); return matchRank(arm, p) }
	if !(r("linux/arm/v7") > r("linux/arm/v6") && r("linux/arm/v6") > r("linux/arm/v5")) {
		t.Error("arm: want v7 > v6 > v5")
	}
	amd, _ := ParsePlatform("linux/amd64")
	if matchRank(amd, v1.Platform{OS: "linux", Architecture: "amd64"}) <= matchRank(amd, v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v0"}) {
		t.Error("amd64: exact match must rank first")
	}
}

// TestNoBlobOutsideLayout makes sure no descriptor makes the reader touch a
// file outside blobs/: a decoy file next to the layout must never be read.
func TestNoBlobOutsideLayout(t *testing.T) {
	b := newLayout(t)
	secret := []byte("secret")
	os.WriteFile(filepath.Join(filepath.Dir(b.dir), "secret"), secret, 0o644)
	for _, d := range []string{"sha256:../../../secret", "sha256/../../../secret", "../../secret"} {
		rawIndex(b, map[string]any{"mediaType": v1.MediaTypeImageManifest, "digest": d, "size": len(secret)})
		l := b.open(OpenOptions{})
		if _, err := l.Resolve(t.Context(), Select{}); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("digest %q: %v", d, err)
		}
	}
}
