// Package layercache keeps the results of ociclip's per-layer pass
// (tarindex.Index) on disk, so that an image whose layers were indexed
// before costs only its new layers.
//
// A layer pass depends only on the layer blob and on the options that change
// its result, so an entry is keyed by:
//
//   - the layer's compressed digest, as verified (size and sha256) by the run
//     that wrote the entry; a cache hit does not read the blob again, so the
//     blob of a later run is trusted to be the one with that digest (the DiffID
//     recorded in the entry is still checked against the image config by the
//     caller);
//   - the compression the layer's media type implies (a blob indexed as gzip
//     must not satisfy a lookup that expects zstd);
//   - the options that shape the result (clip's checkpoint spacing, the span
//     of resumable checkpoints) and the limits that could have rejected it;
//   - FormatVersion and a fingerprint of the tarindex.Result type, so that an
//     entry written by an ociclip with a different result layout is never
//     decoded into the wrong fields.
//
// The cache is safe for concurrent use by any number of goroutines and
// processes sharing one directory: an entry is written to a temporary file in
// the cache directory and renamed into place, so a reader sees either a
// complete old entry, a complete new one, or none. Every entry is verified
// when read (magic, version, the key echoed in full, lengths, and a sha256 of
// key and payload); an entry that fails any check is reported with ErrCorrupt
// and must be treated as a miss: the caller indexes the layer and Put
// replaces the entry.
//
// Entry layout (integers little-endian):
//
//	magic        8 bytes  "OCICLIPC"
//	version      uint32   FormatVersion
//	key length   uint32
//	payload len  uint64
//	checksum     32 bytes sha256(key || payload)
//	key          the Key's canonical text (Key.String)
//	payload      zstd(encoding/gob(tarindex.Result))
//
// Entries are named DIR/<algorithm>-<hex>-<16 hex of sha256(key)>; temporary
// files start with ".tmp-" and can be removed when no ociclip runs.
package layercache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/tarindex"
)

// FormatVersion is the version of the entry format and of the meaning of
// its content. Bump it when tarindex starts computing something differently
// without changing the type of tarindex.Result (type changes are caught by
// the schema fingerprint in every key).
const FormatVersion uint32 = 1

// Magic starts every cache entry.
var Magic = [8]byte{'O', 'C', 'I', 'C', 'L', 'I', 'P', 'C'}

const headerLen = 8 + 4 + 4 + 8 + sha256.Size

// maxKeyLen bounds the key text a reader accepts.
const maxKeyLen = 4096

var (
	// ErrNotFound: the cache holds no entry for the key.
	ErrNotFound = errors.New("layercache: no entry")
	// ErrCorrupt: an entry exists but failed verification (truncated, wrong
	// magic, version or key, checksum mismatch, undecodable payload). It is
	// never used; Put replaces it.
	ErrCorrupt = errors.New("layercache: corrupt entry")
	// ErrKey: the key cannot be used (invalid digest or media type).
	ErrKey = errors.New("layercache: invalid key")
)

// Key identifies one cached layer pass. Build it with NewKey, which
// normalises defaults so that equal passes get equal keys.
type Key struct {
	// Digest is the compressed digest of the layer blob.
	Digest digest.Digest
	// Compression is what the layer's media type implies ("gzip", "zstd",
	// "none"), or "detect" for an empty media type.
	Compression string
	// CheckpointMiB, SpanBytes, SmallFileSpanBytes and Limits are
	// tarindex.Options' fields with defaults applied (SpanBytes -1: no
	// resumable checkpoints; SmallFileSpanBytes -1: none closer).
	CheckpointMiB      int
	SpanBytes          int64
	SmallFileSpanBytes int64
	Limits             tarindex.Limits
}

// NewKey returns the key of indexing the blob with digest d and media type
// mediaType with options o (o.Progress is ignored). It fails with ErrKey for
// an invalid digest or a media type tarindex does not index; such a layer
// should be indexed without the cache (tarindex reports the real error).
func NewKey(d digest.Digest, mediaType string, o tarindex.Options) (Key, error) {
	if err := d.Validate(); err != nil {
		return Key{}, fmt.Errorf("%w: digest %q: %v", ErrKey, d, err)
	}
	comp := "detect"
	if mediaType != "" {
		c, err := layerz.ForMediaType(mediaType)
		if err != nil {
			return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
		}
		comp = c.String()
	}
	o = o.Normalized()
	return Key{Digest: d, Compression: comp, CheckpointMiB: o.CheckpointMiB, SpanBytes: o.SpanBytes, SmallFileSpanBytes: o.SmallFileSpanBytes, Limits: o.Limits}, nil
}

// String returns the canonical text of the key, which every entry echoes.
func (k Key) String() string {
	return fmt.Sprintf("ociclip layer cache v%d\nalgorithm %d\nschema %s\ndigest %s\ncompression %s\ncheckpoint-mib %d\nspan-bytes %d\nsmall-file-span-bytes %d\nmax-entries %d\nmax-path-len %d\nmax-uncompressed-bytes %d\n",
		FormatVersion, tarindex.AlgorithmVersion, schema, k.Digest, k.Compression, k.CheckpointMiB, k.SpanBytes, k.SmallFileSpanBytes,
		k.Limits.MaxEntries, k.Limits.MaxPathLen, k.Limits.MaxUncompressedBytes)
}

// name returns the entry's file name.
func (k Key) name() string {
	sum := sha256.Sum256([]byte(k.String()))
	return fmt.Sprintf("%s-%s-%s", k.Digest.Algorithm(), k.Digest.Encoded(), hex.EncodeToString(sum[:8]))
}

// Cache is a directory of cached layer results.
type Cache struct {
	dir string
}

// Open returns the cache in dir, creating the directory (and its parents)
// when it does not exist.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		return nil, fmt.Errorf("layercache: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("layercache: creating %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("layercache: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("layercache: %s is not a directory", dir)
	}
	return &Cache{dir: dir}, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Path returns the file that holds (or would hold) the entry for k.
func (c *Cache) Path(k Key) string { return filepath.Join(c.dir, k.name()) }

// Get returns the cached result for k. It returns an error wrapping
// ErrNotFound when there is no entry, ErrCorrupt when the entry failed
// verification, or the I/O error that prevented reading it.
func (c *Cache) Get(k Key) (*tarindex.Result, error) {
	p := c.Path(k)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w for %s", ErrNotFound, k.Digest)
		}
		return nil, fmt.Errorf("layercache: %w", err)
	}
	r, err := decode(b, k.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	return r, nil
}

// Put stores r as the result for k, replacing any entry (valid or not)
// atomically. The file is not synced: after a crash an entry may be empty
// or torn, which Get detects (ErrCorrupt) like any other damage.
func (c *Cache) Put(k Key, r *tarindex.Result) (err error) {
	if r == nil {
		return fmt.Errorf("layercache: nil result")
	}
	b, err := encode(k.String(), r)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, ".tmp-"+k.name()+"-*")
	if err != nil {
		return fmt.Errorf("layercache: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("layercache: writing %s: %w", tmp, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("layercache: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("layercache: closing %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, c.Path(k)); err != nil {
		return fmt.Errorf("layercache: %w", err)
	}
	return nil
}

// encode returns the entry bytes for key text key and result r.
func encode(key string, r *tarindex.Result) ([]byte, error) {
	var payload bytes.Buffer
	zw, err := zstd.NewWriter(&payload, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, fmt.Errorf("layercache: %w", err)
	}
	if err := gob.NewEncoder(zw).Encode(r); err != nil {
		zw.Close()
		return nil, fmt.Errorf("layercache: encoding result: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("layercache: compressing result: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(key))
	h.Write(payload.Bytes())
	out := make([]byte, 0, headerLen+len(key)+payload.Len())
	out = append(out, Magic[:]...)
	out = binary.LittleEndian.AppendUint32(out, FormatVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(key)))
	out = binary.LittleEndian.AppendUint64(out, uint64(payload.Len()))
	out = h.Sum(out)
	out = append(out, key...)
	return append(out, payload.Bytes()...), nil
}

// decode verifies entry bytes b against the expected key text and decodes
// the result.
func decode(b []byte, key string) (*tarindex.Result, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%d bytes, shorter than the %d-byte header", len(b), headerLen)
	}
	if !bytes.Equal(b[:8], Magic[:]) {
		return nil, fmt.Errorf("bad magic %q", b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:12]); v != FormatVersion {
		return nil, fmt.Errorf("format version %d, this ociclip uses %d", v, FormatVersion)
	}
	klen := uint64(binary.LittleEndian.Uint32(b[12:16]))
	plen := binary.LittleEndian.Uint64(b[16:24])
	if klen > maxKeyLen {
		return nil, fmt.Errorf("key length %d", klen)
	}
	rest := uint64(len(b) - headerLen)
	if klen > rest || plen != rest-klen {
		return nil, fmt.Errorf("%d bytes after the header, want %d of key and %d of payload", rest, klen, plen)
	}
	k := b[headerLen : headerLen+klen]
	payload := b[headerLen+klen:]
	h := sha256.New()
	h.Write(k)
	h.Write(payload)
	if !bytes.Equal(h.Sum(nil), b[24:headerLen]) {
		return nil, fmt.Errorf("checksum mismatch")
	}
	if string(k) != key {
		return nil, fmt.Errorf("entry is for another key (%s)", strings.TrimSuffix(strings.ReplaceAll(string(k), "\n", "; "), "; "))
	}
	zr, err := zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	var r tarindex.Result
	if err := gob.NewDecoder(zr).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding payload: %v", err)
	}
	return &r, nil
}

// schema fingerprints the tarindex.Result type: the exported fields gob
// encodes, recursively, with their names and types.
var schema = func() string {
	var sb strings.Builder
	describe(&sb, reflect.TypeFor[tarindex.Result](), map[reflect.Type]bool{})
	sum := sha256.Sum256([]byte(sb.String()))
	return hex.EncodeToString(sum[:8])
}()

func describe(sb *strings.Builder, t reflect.Type, seen map[reflect.Type]bool) {
	if t.Name() != "" {
		sb.WriteString(t.PkgPath() + "." + t.Name() + ":")
	}
	if t == reflect.TypeFor[digest.Digest]() || t.PkgPath() == "time" {
		sb.WriteString(t.Kind().String())
		return
	}
	if seen[t] {
		sb.WriteString("<cycle>")
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		seen[t] = true
		sb.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			sb.WriteString(f.Name + " ")
			describe(sb, f.Type, seen)
			sb.WriteString(";")
		}
		sb.WriteString("}")
		delete(seen, t)
	case reflect.Slice, reflect.Array, reflect.Pointer:
		if t.Kind() == reflect.Array {
			fmt.Fprintf(sb, "[%d]", t.Len())
		} else {
			sb.WriteString(t.Kind().String() + " ")
		}
		describe(sb, t.Elem(), seen)
	case reflect.Map:
		sb.WriteString("map[")
		describe(sb, t.Key(), seen)
		sb.WriteString("]")
		describe(sb, t.Elem(), seen)
	default:
		sb.WriteString(t.Kind().String())
	}
}
