package tarindex

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ociclip/ociclip/layerz"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// genFiles returns files totalling about size bytes: mostly small ones,
// some larger than 512 KiB, half compressible text, some incompressible
// (which makes deflate encoders emit stored blocks).
func genFiles(seed uint64, size int) []tfile {
	r := rand.New(rand.NewPCG(seed, 99))
	var fs []tfile
	total := 0
	for i := 0; total < size; i++ {
		var n int
		switch r.IntN(10) {
		case 0:
			n = 512<<10 + r.IntN(1<<20)
		case 1, 2:
			n = r.IntN(64 << 10)
		default:
			n = r.IntN(4096)
		}
		var content []byte
		if r.IntN(3) == 0 {
			content = randomBytes(seed+uint64(i), n)
		} else {
			content = pseudo(seed+uint64(i), n)
		}
		name := fmt.Sprintf("d%02d/f%05d", i%37, i)
		fs = append(fs, tfile{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0644, Size: int64(n)}, content: content,
			want: Entry{Path: "/" + name, Kind: KindFile, Mode: 0644, Size: int64(n)}})
		if i%50 == 0 {
			fs = append(fs, tfile{hdr: tar.Header{Name: name + ".lnk", Typeflag: tar.TypeSymlink, Linkname: "x", Mode: 0777},
				want: Entry{Path: "/" + name + ".lnk", Kind: KindSymlink, Mode: 0777, Linkname: "x"}})
		}
		total += n + 512
	}
	return fs
}

// recordEnds installs the block end hook and returns the recorded ends and
// the largest drift correction applied.
func recordEnds(opts *Options) (*[]layerz.BlockEnd, *int64) {
	var ends []layerz.BlockEnd
	var maxDrift int64
	opts.blockEnd = func(be layerz.BlockEnd, drift int64) {
		ends = append(ends, be)
		maxDrift = max(maxDrift, drift)
	}
	return &ends, &maxDrift
}

// nominalCheckpoints applies clip's rules to the uncompressed tar u: a
// checkpoint at a header when interval bytes passed since the last one, one
// before a regular file > 512 KiB when 512 KiB passed, a final one at the end
// of the tar if anything passed.
func nominalCheckpoints(t *testing.T, u []byte, interval int64) []int64 {
	cr := &layerz.CountingReader{R: bytes.NewReader(u)}
	tr := tar.NewReader(cr)
	var out []int64
	var last int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if cr.N-last >= interval {
			out = append(out, cr.N)
			last = cr.N
		}
		if h.Typeflag == tar.TypeReg && h.Size > 512<<10 && cr.N-last >= 512<<10 {
			out = append(out, cr.N)
			last = cr.N
		}
	}
	if cr.N > last {
		out = append(out, cr.N)
	}
	return out
}

// gzipWriters are the encoders whose output the checkpoint tests read.
var gzipWriters = []struct {
	name     string
	compress func(t testing.TB, b []byte) []byte
}{
	{"go", gzipGo},
	{"klauspost", gzipKlauspost},
	{"multi", gzipMulti},
	{"gnu-gzip", gzipExec("gzip", "-c", "-6")},
	{"gnu-gzip-1", gzipExec("gzip", "-c", "-1")},
	{"pigz", gzipExec("pigz", "-c", "-p", "2")},
	{"pigz-indep", gzipExec("pigz", "-c", "-i", "-p", "2")},
}

func TestGzipCheckpointsOnBlockEnds(t *testing.T) {
	t.Parallel()
	u := writeTar(t, genFiles(1, scaled(9<<20)), tar.FormatPAX, nil)
	for _, w := range gzipWriters {
		t.Run(w.name, func(t *testing.T) {
			blob := w.compress(t, u)
			for _, mib := range []int{1, 2} {
				opts := Options{MediaType: layerz.MediaTypeOCILayerGzip, CheckpointMiB: mib, SpanBytes: -1}
				ends, _ := recordEnds(&opts)
				res := mustIndex(t, blob, opts)
				if res.DiffID != digest.FromBytes(u) {
					t.Fatal("DiffID")
				}
				if len(res.ResumePoints) != 0 {
					t.Error("resume points with SpanBytes < 0")
				}
				checkClipCheckpoints(t, res.GzipCheckpoints, *ends, nominalCheckpoints(t, u, int64(mib)<<20))
			}
		})
	}
}

func checkClipCheckpoints(t *testing.T, got []Checkpoint, ends []layerz.BlockEnd, nominal []int64) {
	t.Helper()
	isEnd := map[Checkpoint]bool{}
	for i, e := range ends {
		isEnd[Checkpoint{COff: e.COff, UOff: e.UOff}] = true
		if i > 0 && (e.UOff < ends[i-1].UOff || e.COff*8+int64(e.Bit) <= ends[i-1].COff*8+int64(ends[i-1].Bit)) {
			t.Fatalf("block ends out of order: %+v after %+v", e, ends[i-1])
		}
	}
	for i, c := range got {
		if c.UOff <= 0 || c.COff <= 0 {
			t.Errorf("checkpoint %d: %+v", i, c)
		}
		if i > 0 && (c.UOff <= got[i-1].UOff || c.COff <= got[i-1].COff) {
			t.Errorf("checkpoint %d %+v does not increase over %+v", i, c, got[i-1])
		}
		if !isEnd[c] {
			t.Errorf("checkpoint %d %+v is not a deflate block end", i, c)
		}
	}
	// The expected checkpoints: for each nominal position, the latest block
	// end at or before it (skipping repeats and UOff 0).
	var want []Checkpoint
	j := -1
	for _, p := range nominal {
		for j+1 < len(ends) && ends[j+1].UOff <= p {
			j++
		}
		if j < 0 || ends[j].UOff == 0 {
			continue
		}
		c := Checkpoint{COff: ends[j].COff, UOff: ends[j].UOff}
		if len(want) > 0 && want[len(want)-1].UOff >= c.UOff {
			continue
		}
		want = append(want, c)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("checkpoints\n got %v\nwant %v\nnominal %v", got, want, nominal)
	}
	if len(nominal) > 2 && len(want) < len(nominal)/2 {
		t.Errorf("only %d of %d nominal checkpoints placed", len(want), len(nominal))
	}
}

// umociLayer builds an image with umoci (init, new, insert of a directory
// holding files) and returns the inserted layer and the tar it holds.
func umociLayer(t *testing.T, files []tfile) (blob []byte, mediaType string) {
	umoci := needTool(t, "umoci")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, f := range files {
		p := filepath.Join(src, f.hdr.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(umoci, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("umoci %v: %v\n%s", args, err, out)
		}
	}
	run("init", "--layout", img)
	run("new", "--image", img+":t")
	run("insert", "--rootless", "--image", img+":t", src, "/data")
	var idx ocispec.Index
	readJSON(t, filepath.Join(img, "index.json"), &idx)
	var m ocispec.Manifest
	d := idx.Manifests[0].Digest
	readJSON(t, filepath.Join(img, "blobs", "sha256", d.Encoded()), &m)
	l := m.Layers[len(m.Layers)-1]
	b, err := os.ReadFile(filepath.Join(img, "blobs", "sha256", l.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	return b, l.MediaType
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
