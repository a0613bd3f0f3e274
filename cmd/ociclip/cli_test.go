package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/testimage"
)

// TestMain lets the tests run this binary as the ociclip command: with
// OCICLIP_TEST_MAIN=1 it executes run on its arguments and exits.
func TestMain(m *testing.M) {
	if os.Getenv("OCICLIP_TEST_MAIN") == "1" {
		ctx, stop := signalContext(context.Background())
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// matchLines checks that got has exactly the lines of the patterns, each
// matching in full.
func matchLines(t *testing.T, what, got string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if got == "" {
		lines = nil
	}
	if len(lines) != len(patterns) {
		t.Errorf("%s: %d lines, want %d:\n%s", what, len(lines), len(patterns), got)
		return
	}
	for i, p := range patterns {
		if !regexp.MustCompile("^" + p + "$").MatchString(lines[i]) {
			t.Errorf("%s: line %d is\n  %q\nwant match for\n  %q", what, i+1, lines[i], p)
		}
	}
}

const (
	l1 = `layer 1/3 sha256:bdbac3efa91a`
	l2 = `layer 2/3 sha256:6f7078209b61`
	l3 = `layer 3/3 sha256:42906f85684d`
	// done: bytes, seconds, MB/s, uncompressed, entries.
	doneRe = `: done, %s in \d+\.\d\ds \(\d+\.\d [kMG]B/s\), %s uncompressed, %d entries`
)

// Without a terminal, progress is one line per layer start and finish; with
// the cache, one line per cached layer; -q prints nothing on stderr.
func TestIndexProgressLines(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bb.clip")
	cache := filepath.Join(dir, "cache")
	args := []string{"index", "oci:" + busybox + ":1.35", "-o", out, "--storage-ref", "docker.io/library/busybox:1.35", "--jobs", "1", "--cache-dir", cache}
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	matchLines(t, "cold stderr", stderr,
		l1+`: indexing 1\.0 MiB`,
		l1+fmt.Sprintf(doneRe, `1\.0 MiB`, `1\.9 MiB`, 44),
		l2+`: indexing 520 B`,
		l2+fmt.Sprintf(doneRe, `520 B`, `9\.0 KiB`, 12),
		l3+`: indexing 470 B`,
		l3+fmt.Sprintf(doneRe, `470 B`, `10\.0 KiB`, 15),
	)
	matchLines(t, "cold stdout", stdout,
		`wrote `+regexp.QuoteMeta(out)+`: 3 layers \(0 cached\), 43 nodes \(18 files, 20 dirs, 5 symlinks, 3 hard links\), 2\.0 MiB uncompressed in \d+\.\d\ds \(\d+\.\d [kMG]B/s\)`,
		`manifest sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9, archive \d+\.\d KiB \(\d+(\.\d)? (B|KiB) of it resume points\)`)
	cold, _ := os.ReadFile(out)

	code, stdout, stderr = runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	matchLines(t, "warm stderr", stderr,
		l1+`: cached, 44 entries`,
		l2+`: cached, 12 entries`,
		l3+`: cached, 15 entries`,
	)
	if !strings.Contains(stdout, "3 layers (3 cached)") || strings.Contains(stdout, "MB/s") {
		t.Errorf("warm stdout %q", stdout)
	}
	if warm, _ := os.ReadFile(out); !bytes.Equal(cold, warm) {
		t.Error("warm run wrote different bytes")
	}

	// -q: nothing on stderr, also no warning (no --storage-ref here).
	for _, extra := range [][]string{nil, {"--cache-dir", cache}, {"--json"}} {
		a := append([]string{"index", "-q", "oci:" + busybox + ":1.35", "-o", out}, extra...)
		code, stdout, stderr = runCLI(t, a...)
		if code != 0 || stderr != "" || stdout == "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q", a, code, stderr, stdout)
		}
	}
	// --progress none keeps warnings; lines mode shows them after the layers.
	code, _, stderr = runCLI(t, "index", "--progress", "none", "oci:"+busybox+":1.35", "-o", out)
	matchLines(t, "--progress none", stderr, `warning: no storage reference given: .*`)
	code, _, stderr = runCLI(t, "index", "--progress", "lines", "--jobs", "1", "--cache-dir", cache, "oci:"+busybox+":1.35", "-o", out)
	matchLines(t, "lines with a warning", stderr, l1+`: cached, 44 entries`, l2+`: cached, 12 entries`, l3+`: cached, 15 entries`, `warning: no storage reference given: .*`)
	// An explicit --log-level beats -q's default.
	code, _, stderr = runCLI(t, "index", "-q", "--log-level", "debug", "--cache-dir", cache, "oci:"+busybox+":1.35", "-o", out)
	if code != 0 || !strings.Contains(stderr, "debug: layer cache hit layer=1 digest=sha256:bdbac3efa91a") || strings.Contains(stderr, "cached, 44") {
		t.Errorf("-q --log-level debug: %d %s", code, stderr)
	}
}

// Progress bars, forced without a terminal, end with each layer's status.
func TestIndexProgressBars(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bb.clip")
	code, _, stderr := runCLI(t, "index", "--progress", "bars", "oci:"+busybox+":1.35", "-o", out, "--cache-dir", filepath.Join(dir, "c"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{l1 + "   done (1.0 MiB, 44 entries)", l3 + "   done (470 B, 15 entries)", "warning: no storage reference"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("bars output lacks %q:\n%s", want, stderr)
		}
	}
	code, _, stderr = runCLI(t, "index", "--progress", "bars", "oci:"+busybox+":1.35", "-o", out, "--cache-dir", filepath.Join(dir, "c"))
	if code != 0 || !strings.Contains(stderr, l2+"   cached (520 B, 12 entries)") {
		t.Errorf("warm bars: %d\n%s", code, stderr)
	}
	// A failing run aborts its bars and still prints one error line last.
	code, _, stderr = runCLI(t, "index", "--progress", "bars", "oci:"+busybox+":nope", "-o", out)
	if code != 1 || !strings.HasPrefix(lastLine(stderr), "ociclip index: error: ") {
		t.Errorf("failing run with bars: %d %q", code, stderr)
	}
}

// A cancelled run (Ctrl-C) with bars ends promptly with the cancellation.
func TestIndexCancelledWithBars(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "x.clip")
	done := make(chan struct{})
	var code int
	var stderr bytes.Buffer
	go func() {
		defer close(done)
		code = run(ctx, []string{"index", "--progress", "bars", "oci:" + busybox + ":1.35", "-o", out}, io.Discard, &stderr)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("cancelled index with bars did not return")
	}
	if code != 1 || !strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written")
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestIndexFlagsErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.clip")
	for _, a := range [][]string{
		{"--log-level", "loud"},
		{"--progress", "fancy"},
	} {
		args := append([]string{"index", "oci:" + busybox + ":1.35", "-o", out}, a...)
		if code, _, stderr := runCLI(t, args...); code != 2 || !strings.Contains(stderr, a[0]) {
			t.Errorf("%q: exit %d, %s", a, code, stderr)
		}
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if code, _, stderr := runCLI(t, "index", "oci:"+busybox+":1.35", "-o", out, "--cache-dir", f); code != 1 || !strings.Contains(stderr, f) {
		t.Errorf("--cache-dir FILE: exit %d, %s", code, stderr)
	}
	code, stdout, _ := runCLI(t, "index", "-q", "--json", "oci:"+busybox+":1.35", "-o", out, "--cache-dir", t.TempDir())
	var s indexSummary
	if code != 0 || json.Unmarshal([]byte(stdout), &s) != nil || s.CachedLayers != 0 || s.Layers != 3 {
		t.Errorf("--json: %d %s", code, stdout)
	}
}

// Every limit has a flag; exceeding it fails (exit 1, no output) with an
// error naming the limit and the flag, and raising it back succeeds.
func TestIndexLimitFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.clip")
	for _, tc := range []struct{ flag, value, name string }{
		{"--max-entries", "10", "MaxEntries"},
		{"--max-nodes", "5", "MaxNodes"},
		{"--max-path-len", "5", "MaxPathLen"},
		{"--max-uncompressed", "1K", "MaxUncompressedBytes"},
		{"--max-json-bytes", "100", "MaxJSONBytes"},
	} {
		code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out, tc.flag, tc.value)
		if code != 1 || !strings.Contains(stderr, tc.name) || !strings.Contains(stderr, "raise the limit with "+tc.flag) {
			t.Errorf("%s %s: exit %d, %s", tc.flag, tc.value, code, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s %s: output left behind (%v)", tc.flag, tc.value, err)
		}
	}
	// Generous values index the image.
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out, "--max-entries", "100", "--max-uncompressed", "64M",
		"--max-json-bytes", "1MiB", "--max-nodes", "1000", "--max-path-len", "255", "--max-index-depth", "1"); code != 0 {
		t.Errorf("generous limits: exit %d, %s", code, stderr)
	}
	for _, a := range [][]string{{"--max-entries", "-1"}, {"--max-uncompressed", "12Q"}, {"--max-json-bytes", "-5"}, {"--max-uncompressed", "99999999999T"}} {
		if code, _, stderr := runCLI(t, "index", "oci:"+busybox+":1.35", "-o", out, a[0], a[1]); code != 2 || !strings.Contains(stderr, a[0][2:]) {
			t.Errorf("%q: exit %d, %s", a, code, stderr)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "123": 123, "64K": 64 << 10, "8m": 8 << 20, "1G": 1 << 30, "1T": 1 << 40, "2MiB": 2 << 20, "3KB": 3 << 10, "7B": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "1.5G", "1P", "9223372036854775807K", "x"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// indexProcess runs `ociclip index --json ARGS` as a process of its own
// (this test binary, see TestMain) with env added to the environment, and
// returns the summary and what it wrote on stderr.
func indexProcess(exe string, env []string, args ...string) (indexSummary, string, error) {
	cmd := exec.Command(exe, append([]string{"index", "--json"}, args...)...)
	cmd.Env = append(append(os.Environ(), "OCICLIP_TEST_MAIN=1"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	var s indexSummary
	if err == nil {
		err = json.Unmarshal(stdout, &s)
	}
	return s, stderr.String(), err
}

// Two ociclip processes sharing a cache directory, at the same time.
func TestConcurrentProcessesShareCache(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	ref := filepath.Join(dir, "ref.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", ref); code != 0 {
		t.Fatal(stderr)
	}
	want, _ := os.ReadFile(ref)
	for round := range 2 { // cold, then warm
		var wg sync.WaitGroup
		outs := make([]string, 2)
		errs := make([]error, 2)
		for i := range outs {
			outs[i] = filepath.Join(dir, fmt.Sprintf("r%d-%d.clip", round, i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, stderr, err := indexProcess(exe, nil, "-q", "oci:"+busybox+":1.35", "-o", outs[i], "--cache-dir", cache)
				if err == nil && (len(s.Warnings) != 1 || round == 1 && s.CachedLayers != 3) {
					err = fmt.Errorf("summary %+v", s)
				}
				if err != nil {
					errs[i] = fmt.Errorf("%v: %s", err, stderr)
				}
			}()
		}
		wg.Wait()
		for i, out := range outs {
			if errs[i] != nil {
				t.Errorf("round %d process %d: %v", round, i, errs[i])
				continue
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
				t.Errorf("round %d process %d wrote different bytes", round, i)
			}
		}
	}
}

// writeImage writes a generated one-layer image and indexes it.
func writeImage(t *testing.T, entries []testimage.Entry) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := testimage.Write(dir, testimage.Ref{Name: "v1", Image: &testimage.Image{Layers: []testimage.Layer{{Entries: entries}}}}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+dir+":v1", "-o", out, "--storage-ref", "docker.io/library/x:1"); code != 0 {
		t.Fatal(stderr)
	}
	return out
}

func TestDiff(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	base := []testimage.Entry{
		{Name: "etc/", Type: '5', ModTime: t0},
		{Name: "etc/passwd", Body: []byte("root:x:0:0\n"), ModTime: t0},
		{Name: "etc/mode", Body: []byte("m"), Mode: 0o644, ModTime: t0},
		{Name: "etc/owner", Body: []byte("o"), ModTime: t0},
		{Name: "etc/time", Body: []byte("t"), ModTime: t0},
		{Name: "etc/link", Type: '2', Linkname: "passwd", ModTime: t0},
		{Name: "etc/becomes-dir", Body: []byte("f"), ModTime: t0},
		{Name: "etc/gone", Body: []byte("g"), ModTime: t0},
	}
	changed := []testimage.Entry{
		{Name: "etc/", Type: '5', ModTime: t0},
		{Name: "etc/passwd", Body: []byte("root:x:0:0\nbin:x:1:1\n"), ModTime: t0},
		{Name: "etc/mode", Body: []byte("m"), Mode: 0o4755, ModTime: t0},
		{Name: "etc/owner", Body: []byte("o"), Uid: 1000, Gid: 100, ModTime: t0},
		{Name: "etc/time", Body: []byte("t"), ModTime: t0.Add(90 * time.Second)},
		{Name: "etc/link", Type: '2', Linkname: "mode", ModTime: t0},
		{Name: "etc/becomes-dir/", Type: '5', ModTime: t0},
		{Name: "etc/new", Body: []byte("n"), ModTime: t0},
	}
	a := writeImage(t, base)
	a2 := writeImage(t, base)
	b := writeImage(t, changed)

	code, stdout, stderr := runCLI(t, "diff", a, a2)
	if code != 0 || stdout != "identical\n" || stderr != "" {
		t.Errorf("identical: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "diff", a, b, "--json")
	if code != 1 || stderr != "" {
		t.Fatalf("different: exit %d, %s", code, stderr)
	}
	var d diffOutput
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.Identical || strings.Join(d.Added, " ") != "/etc/new" || strings.Join(d.Removed, " ") != "/etc/gone" {
		t.Errorf("added %v removed %v", d.Added, d.Removed)
	}
	attrs := map[string]string{}
	for _, c := range d.Changed {
		var names []string
		for _, a := range c.Changes {
			names = append(names, a.Attr)
		}
		attrs[c.Path] = strings.Join(names, ",")
	}
	want := map[string]string{
		// Inodes derive from the layer digest, which differs.
		"/etc":             "Attr.Ino",
		"/etc/passwd":      "size,data,Attr.Ino",
		"/etc/mode":        "mode,data,Attr.Ino",
		"/etc/owner":       "owner,data,Attr.Ino",
		"/etc/time":        "mtime,data,Attr.Ino",
		"/etc/link":        "size,target,Attr.Ino",
		"/etc/becomes-dir": "type,mode,size,nlink,data,Attr.Ino,Attr.Blocks",
	}
	for p, w := range want {
		if attrs[p] != w {
			t.Errorf("%s changed %q, want %q", p, attrs[p], w)
		}
	}
	// Files' data moved to the other image's layer; symlinks have none.
	if len(d.Image) == 0 || d.Image[0].Attr != "manifest" {
		t.Errorf("image changes %+v", d.Image)
	}
	for _, c := range d.Changed {
		if c.Path == "/etc/mode" {
			if c.Changes[0].A != "-rw-r--r--" || c.Changes[0].B != "-rwsr-xr-x" {
				t.Errorf("mode change %+v", c.Changes[0])
			}
		}
		if c.Path == "/etc/passwd" && !strings.HasPrefix(c.Changes[1].B, "sha256:") {
			t.Errorf("data change %+v", c.Changes[1])
		}
	}

	code, stdout, _ = runCLI(t, "diff", a, b)
	for _, line := range []string{"+ /etc/new", "- /etc/gone", "~ /etc/owner: owner 0:0 -> 1000:100, data sha256:", "~ /etc/link: size 6 -> 4, target passwd -> mode, Attr.Ino ",
		"~ /etc/time: mtime 2024-01-02T03:04:05Z -> 2024-01-02T03:05:35Z", "paths added, 1 removed, 7 changed"} {
		if code != 1 || !strings.Contains(stdout, line) {
			t.Errorf("text diff lacks %q:\n%s", line, stdout)
		}
	}
	if i, j := strings.Index(stdout, "- /etc/gone"), strings.Index(stdout, "+ /etc/new"); i > j {
		t.Errorf("lines not in path order:\n%s", stdout)
	}

	for _, args := range [][]string{
		{"diff", a},
		{"diff", a, b, "c"},
		{"diff", a, filepath.Join(t.TempDir(), "missing.clip")},
		{"diff", a, busybox + "/index.json"},
		{"diff", "--bogus", a, b},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	v := ociclip.Version()
	if code != 0 || !strings.HasPrefix(stdout, "ociclip (devel)\n") ||
		!strings.Contains(stdout, "clip:           github.com/beam-cloud/clip v0.0.0-20260126181811-a2a14fb37f70\n") ||
		!strings.Contains(stdout, "go:             "+v.GoVersion) ||
		!strings.Contains(stdout, fmt.Sprintf("clip v2 (header version %d), ociclip extension section version %d", v.ClipFormatVersion, v.ExtensionVersion)) {
		t.Errorf("version: %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "version", "--json")
	var got ociclip.VersionInfo
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || got != v || got.ClipVersion != ociclip.ClipVersion || got.CacheFormatVersion == 0 {
		t.Errorf("version --json: %d %s", code, stdout)
	}
	if code, _, _ := runCLI(t, "version", "x"); code != 2 {
		t.Errorf("version x: exit %d", code)
	}
}
