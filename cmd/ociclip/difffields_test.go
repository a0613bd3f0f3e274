package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
)

// leaves calls f with the Go path and value of every leaf field below v
// (a settable struct), walking structs and non-nil pointers to structs.
func leaves(v reflect.Value, path string, f func(string, reflect.Value)) {
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
		leaves(v.Elem(), path, f)
		return
	}
	if v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(time.Time{}) {
		for i := 0; i < v.NumField(); i++ {
			p := v.Type().Field(i).Name
			if path != "" {
				p = path + "." + p
			}
			leaves(v.Field(i), p, f)
		}
		return
	}
	f(path, v)
}

// perturb changes a leaf value.
func perturb(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		elem := reflect.Zero(v.Type().Elem())
		if v.Type().Elem().Kind() == reflect.Pointer {
			elem = reflect.New(v.Type().Elem().Elem())
		}
		v.SetMapIndex(reflect.ValueOf("zz-added").Convert(v.Type().Key()), elem)
	case reflect.Struct: // time.Time
		v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
	default:
		t.Fatalf("%s: cannot change a %s", path, v.Type())
	}
}

// diff reports a change of any field clip reads, of a node or of the storage
// info (image name and created time included), naming the field.
func TestDiffEveryField(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bb.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out, "--storage-ref", "docker.io/library/busybox:1.35"); code != 0 {
		t.Fatal(stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	decode := func() *archive.Archive {
		a, err := archive.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// A regular file: every field is set, Remote included.
	fileNode := func(a *archive.Archive) *common.ClipNode {
		for _, n := range a.Nodes {
			if n.NodeType == common.FileNode && n.Remote != nil {
				return n
			}
		}
		t.Fatal("no file node")
		return nil
	}
	if d := diffArchives(decode(), decode()); !d.Identical {
		t.Fatalf("an archive differs from itself: %+v", d)
	}
	check := func(what string, root func(*archive.Archive) reflect.Value, changed func(diffOutput) []string) {
		n := 0
		leaves(root(decode()), "", func(path string, _ reflect.Value) {
			n++
			a, b := decode(), decode()
			leaves(root(b), "", func(p string, v reflect.Value) {
				if p == path {
					perturb(t, p, v)
				}
			})
			d := diffArchives(a, b)
			names := changed(d)
			if d.Identical || len(names) == 0 {
				t.Errorf("%s field %s changed: diff says identical (%+v)", what, path, d)
				return
			}
			// Named by its Go path, or by one of diff's own names.
			if own := map[string]bool{"type": true, "mode": true, "owner": true, "size": true, "mtime": true, "nlink": true, "target": true, "data": true,
				"manifest": true, "reference": true, "layers": true, "checkpoints": true}; path != "Path" && !own[names[0]] && !strings.HasPrefix(path, names[0]) {
				t.Errorf("%s field %s changed: reported as %v", what, path, names)
			}
		})
		if n < 10 {
			t.Errorf("%s: only %d fields walked", what, n)
		}
	}
	check("node", func(a *archive.Archive) reflect.Value { return reflect.ValueOf(fileNode(a)).Elem() }, func(d diffOutput) []string {
		var s []string
		for _, c := range d.Changed {
			for _, x := range c.Changes {
				s = append(s, x.Attr)
			}
		}
		s = append(s, d.Added...) // a changed Path
		return s
	})
	check("storage info", func(a *archive.Archive) reflect.Value { return reflect.ValueOf(&a.Storage).Elem() }, func(d diffOutput) []string {
		var s []string
		for _, c := range d.Image {
			s = append(s, c.Attr)
		}
		return s
	})
}

// The archive does not depend on how the layout's path is spelled: nothing
// machine-local is recorded without --storage-ref (the image name stays
// empty), so relative, absolute and roundabout spellings give the same
// bytes, and diff calls them identical.
func TestReproducibleAcrossPathSpellings(t *testing.T) {
	abs, err := filepath.Abs(busybox)
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	var firstPath string
	for i, src := range []string{"oci:" + busybox + ":1.35", "oci:" + abs + ":1.35", "oci:" + abs + "/../busybox/.:1.35", abs + "/"} {
		out := filepath.Join(t.TempDir(), "x.clip")
		args := []string{"index", "-q", src, "-o", out}
		if !strings.HasPrefix(src, "oci:") {
			args = append(args, "--ref", "1.35")
		}
		if code, _, stderr := runCLI(t, args...); code != 0 {
			t.Fatalf("%s: %s", src, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "testdata/busybox") {
			t.Errorf("%s: the archive records the layout's path", src)
		}
		if i == 0 {
			first, firstPath = b, out
			continue
		}
		if string(b) != string(first) {
			code, stdout, _ := runCLI(t, "diff", firstPath, out)
			t.Errorf("%s: other bytes than %s; diff exit %d:\n%s", src, busybox, code, stdout)
		}
	}
}
