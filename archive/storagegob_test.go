package archive

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"
)

func fullStorageInfo() common.OCIStorageInfo {
	return common.OCIStorageInfo{
		RegistryURL: "index.docker.io", Repository: "library/busybox", Reference: "1.35",
		Layers:                  []string{"sha256:aa", "sha256:bb"},
		GzipIdxByLayer:          map[string]*common.GzipIndex{"sha256:aa": {LayerDigest: "sha256:aa", Checkpoints: []common.GzipCheckpoint{{COff: 1, UOff: 2}}}},
		ZstdIdxByLayer:          map[string]*common.ZstdIndex{"sha256:bb": {LayerDigest: "sha256:bb", Frames: []common.ZstdFrame{{COff: 3, CLen: 4, UOff: 5, ULen: 6}}}},
		DecompressedHashByLayer: map[string]string{"sha256:aa": "sha256:cc", "sha256:bb": "sha256:dd"},
		ImageMetadata: &common.ImageMetadata{
			Name: "busybox", Digest: "sha256:ee", Created: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
			Labels: map[string]string{"a": "b"}, Architecture: "amd64", Os: "linux",
			Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, ExposedPorts: map[string]struct{}{"80/tcp": {}},
			Volumes: map[string]struct{}{"/data": {}}, Layers: []string{"sha256:aa", "sha256:bb"},
			LayersData: []common.LayerMetadata{
				{MIMEType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: "sha256:aa", Size: 7, Annotations: map[string]string{"ANNOTKEY": "v"}},
				{MIMEType: "application/vnd.oci.image.layer.v1.tar+zstd", Digest: "sha256:bb", Size: 8},
			},
		},
	}
}

// decodeStorageInfo gives what a plain gob decode gives, for full and
// sparse storage infos (nil maps stay nil, non-empty maps are kept).
func TestDecodeStorageInfoSameAsGob(t *testing.T) {
	sparse := fullStorageInfo()
	sparse.GzipIdxByLayer, sparse.ImageMetadata.Labels, sparse.ImageMetadata.LayersData = nil, nil, nil
	for name, in := range map[string]common.OCIStorageInfo{
		"full": fullStorageInfo(), "sparse": sparse, "no image metadata": {RegistryURL: "r", Layers: []string{"x"}},
	} {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(in); err != nil {
			t.Fatal(err)
		}
		var want, got common.OCIStorageInfo
		if err := gob.NewDecoder(bytes.NewReader(buf.Bytes())).Decode(&want); err != nil {
			t.Fatal(err)
		}
		if err := decodeStorageInfo(buf.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// A gob stream whose map claims 2^31 entries: encoding/gob would allocate a
// map that size (golang/go#79539); decodeStorageInfo must fail without it.
func TestDecodeStorageInfoHostileMapLength(t *testing.T) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(fullStorageInfo()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ANNOTKEY", "80/tcp", "sha256:cc"} {
		stream := setMapCount(t, buf.Bytes(), key)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var got common.OCIStorageInfo
		err := decodeStorageInfo(stream, &got)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("map holding %q claims 2^31 entries: no error", key)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
			t.Errorf("map holding %q claims 2^31 entries: %d bytes allocated", key, d)
		}
	}
}

// setMapCount rewrites the gob stream so that the map whose first key is
// key (or whose first value is key, for DecompressedHashByLayer) claims
// 2^31-1 entries: it finds the message holding the key, replaces the count
// byte before the key's length byte, and fixes the message length.
func setMapCount(t *testing.T, stream []byte, key string) []byte {
	t.Helper()
	var out []byte
	for len(stream) > 0 {
		n, w := gobUint(stream)
		msg := stream[w : w+int(n)]
		stream = stream[w+int(n):]
		i := bytes.Index(msg, append([]byte{byte(len(key))}, key...))
		if i > 0 {
			if key == "sha256:cc" { // value of the first entry: skip back over its key "sha256:aa"
				i -= 1 + len("sha256:aa")
			}
			m := append([]byte{}, msg[:i-1]...)
			m = append(m, 0xfc, 0x7f, 0xff, 0xff, 0xff) // 2^31-1 as a gob uint
			m = append(m, msg[i:]...)
			msg = m
		}
		out = append(out, gobUintBytes(uint64(len(msg)))...)
		out = append(out, msg...)
	}
	return out
}

func gobUint(b []byte) (uint64, int) {
	if b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	n := int(-int8(b[0]))
	var v uint64
	for _, c := range b[1 : 1+n] {
		v = v<<8 | uint64(c)
	}
	return v, 1 + n
}

func gobUintBytes(v uint64) []byte {
	if v < 0x80 {
		return []byte{byte(v)}
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte(v)}, b...)
		v >>= 8
	}
	return append([]byte{byte(-int8(len(b)))}, b...)
}
