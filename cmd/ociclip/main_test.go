package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/internal/testenv"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

const busybox = "../../testdata/busybox"

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in, ref, want string
		bad           bool
	}{
		{in: "oci:/tmp/ubuntu:24.04", want: "oci:/tmp/ubuntu:24.04"},
		{in: "oci:/tmp/ubuntu", want: "oci:/tmp/ubuntu"},
		{in: "oci:" + busybox + ":1.35", want: "oci:" + busybox + ":1.35"},
		{in: "oci:/tmp/x@sha256:abcd", want: "oci:/tmp/x:@sha256:abcd"},
		{in: "/tmp/plain", ref: "v1", want: "oci:/tmp/plain:v1"},
		{in: "docker-archive:/tmp/b.tar:busybox:1.35", want: "docker-archive:/tmp/b.tar:busybox:1.35"},
		{in: "oci:/tmp/x:t", ref: "v1", bad: true},
		{in: "oci:", bad: true},
		{in: "docker://busybox", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseSource(tc.in, tc.ref)
		if tc.bad {
			if err == nil {
				t.Errorf("parseSource(%q) = %+v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("parseSource(%q, %q) = %v, %v; want %s", tc.in, tc.ref, got, err, tc.want)
		}
	}
}

func TestIndexInspectLs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bb.clip")
	code, stdout, stderr := runCLI(t, "index", "oci:"+busybox+":1.35", "-o", out, "--storage-ref", "docker.io/library/busybox:1.35")
	if code != 0 {
		t.Fatalf("index exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) || !strings.Contains(stderr, "layer 3/3") {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("unexpected warning: %s", stderr)
	}

	code, stdout, stderr = runCLI(t, "inspect", out, "--json")
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, stderr)
	}
	var o inspectOutput
	if err := json.Unmarshal([]byte(stdout), &o); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, stdout)
	}
	if o.Repository != "library/busybox" || len(o.Layers) != 3 || o.Nodes == 0 || o.Files == 0 || o.Layers[0].GzipCheckpoints == 0 || o.StorageType != "oci" {
		t.Errorf("inspect %+v", o)
	}
	code, stdout, _ = runCLI(t, "inspect", out)
	if code != 0 || !strings.Contains(stdout, "index.docker.io/library/busybox:1.35") {
		t.Errorf("inspect text: %s", stdout)
	}

	code, stdout, stderr = runCLI(t, "ls", out, "/bin", "-l")
	if code != 0 {
		t.Fatalf("ls exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "/bin/sh -> busybox") || !strings.Contains(stdout, "-rwxr-xr-x") || strings.Contains(stdout, "/bin/cat") {
		t.Errorf("ls -l /bin:\n%s", stdout)
	}
	code, stdout, _ = runCLI(t, "ls", "-l", out, "/")
	if code != 0 || !strings.Contains(stdout, "drwxrwxrwt") || !strings.Contains(stdout, " /tmp ") {
		t.Errorf("ls -l /:\n%s", stdout)
	}
	code, stdout, _ = runCLI(t, "ls", out, "/etc/passwd")
	if code != 0 || stdout != "/etc/passwd\n" {
		t.Errorf("ls /etc/passwd: %q", stdout)
	}
	code, stdout, _ = runCLI(t, "ls", out)
	if code != 0 || !strings.Contains(stdout, "/etc\n") || strings.Contains(stdout, "/etc/passwd") {
		t.Errorf("ls /:\n%s", stdout)
	}
	code, _, stderr = runCLI(t, "ls", out, "/nope")
	if code != 1 || !strings.Contains(stderr, "/nope") {
		t.Errorf("ls /nope: %d %s", code, stderr)
	}
}

func TestIndexJSONAndWarning(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bb.clip")
	code, stdout, stderr := runCLI(t, "index", busybox, "--ref", "1.35", "-o", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s indexSummary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if s.Layers != 3 || s.Files == 0 || s.RefName != "1.35" || !strings.HasPrefix(s.ManifestDigest, "sha256:") {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(stderr, "warning: no storage reference") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestErrorsAreOneLineAndLeaveNoOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.clip")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"index", "oci:" + busybox + ":nope", "-o", out}, 1, "1.35"},
		{[]string{"index", "oci:" + dir + ":x", "-o", out}, 1, dir},
		{[]string{"index", "oci:" + busybox + ":1.35"}, 2, "-o"},
		{[]string{"index", "oci:" + busybox + ":1.35", "-o", out, "--platform", "linux"}, 2, "platform"},
		{[]string{"index", "a", "b", "-o", out}, 2, "SOURCE"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"inspect", busybox + "/index.json"}, 1, "not a clip archive"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, tc.code, tc.want)
		}
		if code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%q: error is not one line: %q", tc.args, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left files: %v", entries)
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runCLI(t, "help")
	if code != 0 || !strings.Contains(stdout, "index") || !strings.Contains(stdout, "inspect") {
		t.Errorf("help: %d %s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "index", "--help")
	if code != 0 || !strings.Contains(stdout, "oci:DIR[:REF]") || !strings.Contains(stdout, "--storage-ref") {
		t.Errorf("index --help: %d %s", code, stdout)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[uint32]string{
		0o040755: "drwxr-xr-x", 0o041777: "drwxrwxrwt", 0o104755: "-rwsr-xr-x",
		0o120777: "lrwxrwxrwx", 0o102644: "-rw-r-Sr--", 0o041776: "drwxrwxrwT",
	} {
		if got := modeString(m); got != want {
			t.Errorf("modeString(%o) = %s, want %s", m, got, want)
		}
	}
}

// Every source transport indexes to the same tree as the oci: layout it was
// copied from (skopeo writes the copies).
func TestIndexOtherSources(t *testing.T) {
	testenv.LookPath(t, "skopeo")
	dir := t.TempDir()
	copyTo := func(dest string, extra ...string) {
		args := append([]string{"copy", "-q"}, extra...)
		args = append(args, "oci:"+busybox+":1.35", dest)
		if out, err := exec.Command("skopeo", args...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
	}
	copyTo("oci-archive:" + dir + "/bb.tar:1.35")
	copyTo("dir:" + dir + "/bbdir")
	copyTo("docker-archive:" + dir + "/bb-docker.tar:busybox:1.35")
	indexOf := func(src string) string {
		out := filepath.Join(t.TempDir(), "x.clip")
		if code, _, stderr := runCLI(t, "index", "-q", src, "-o", out, "--storage-ref", "docker.io/library/busybox:1.35"); code != 0 {
			t.Fatalf("index %s: %s", src, stderr)
		}
		return out
	}
	lsOf := func(clip string) string {
		code, stdout, stderr := runCLI(t, "ls", "-R", clip)
		if code != 0 {
			t.Fatalf("ls: %s", stderr)
		}
		return stdout
	}
	ociOut := indexOf("oci:" + busybox + ":1.35")
	ociBytes, err := os.ReadFile(ociOut)
	if err != nil {
		t.Fatal(err)
	}
	// oci-archive and dir: carry the same manifest and blobs: the archive is
	// byte-for-byte the same.
	for _, src := range []string{"oci-archive:" + dir + "/bb.tar:1.35", "dir:" + dir + "/bbdir"} {
		b, err := os.ReadFile(indexOf(src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, ociBytes) {
			t.Errorf("%s: archive differs from the oci: layout's", src)
		}
	}
	// docker-archive holds uncompressed layers (other digests, so other
	// inodes): the same tree.
	want := lsOf(ociOut)
	dockerOut := indexOf("docker-archive:" + dir + "/bb-docker.tar:busybox:1.35")
	if got := lsOf(dockerOut); got != want {
		t.Errorf("docker-archive lists\n%s\nwant\n%s", got, want)
	}
	// cat reads through the index from an archive source too.
	out := filepath.Join(t.TempDir(), "a.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci-archive:"+dir+"/bb.tar:1.35", "-o", out); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCLI(t, "cat", out, "/etc/passwd", "--layout", "oci-archive:"+dir+"/bb.tar")
	if code != 0 || !strings.HasPrefix(stdout, "root:x:0:0") {
		t.Errorf("cat: %d %q %s", code, stdout, stderr)
	}
}
