package ociread

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Transports OpenSource accepts, named as in skopeo (containers/image).
const (
	// TransportOCI is an OCI image layout directory (oci:DIR[:REF]).
	TransportOCI = "oci"
	// TransportOCIArchive is a tar file of an OCI image layout, as
	// `skopeo copy ... oci-archive:FILE:TAG` writes it
	// (oci-archive:FILE[:REF]).
	TransportOCIArchive = "oci-archive"
	// TransportDockerArchive is `docker save` output, legacy or with an
	// OCI layout inside (docker 25+), or what `skopeo copy ...
	// docker-archive:FILE:NAME:TAG` writes (docker-archive:FILE[:REF]).
	TransportDockerArchive = "docker-archive"
	// TransportDir is the containers/image dir: transport: manifest.json,
	// a version file and blobs named by their bare hex digest (dir:DIR).
	TransportDir = "dir"
)

// Source names an image source in skopeo's transport syntax.
type Source struct {
	// Transport is one of the Transport* constants; "" means TransportOCI.
	Transport string
	// Path is the layout directory, the archive file or the dir: directory.
	Path string
	// Ref selects the image inside the source; pass it as Select.Ref.
	// For oci and oci-archive it is a ref name (or "@sha256:<hex>"), for
	// docker-archive an image name such as "busybox:1.35" or "@N" (the
	// N-th image of manifest.json, from 0). Empty: the only image.
	Ref string
}

// String formats s as ParseSource accepts it, e.g. "oci-archive:bb.tar:1.35".
func (s Source) String() string {
	t := s.Transport
	if t == "" {
		t = TransportOCI
	}
	out := t + ":" + s.Path
	if s.Ref != "" {
		out += ":" + s.Ref
	}
	return out
}

// ParseSource parses an image source in skopeo's transport syntax:
//
//	oci:DIR[:REF]              an OCI image layout directory
//	oci-archive:FILE[:REF]     a tar file of an OCI image layout
//	docker-archive:FILE[:REF]  docker save output; REF is NAME[:TAG] or @N
//	dir:DIR                    a containers/image dir: directory (no REF)
//	PATH                       (no transport) an OCI image layout directory
//
// Paths may contain colons. If everything after the transport names an
// existing file or directory, it is taken whole as the path. Otherwise the
// path ends at the colon after which the longest existing path of the right
// kind (a directory for oci, a file for the archives) ends, and the rest is
// REF; so REF may itself contain colons ("docker-archive:bb.tar:busybox:1.35"
// has the path bb.tar and the ref busybox:1.35). When no such prefix exists
// the path ends at the first colon, which is skopeo's rule. For oci and
// oci-archive a digest ref may also follow the path directly:
// "oci:DIR@sha256:<hex>" is the same as "oci:DIR:@sha256:<hex>" (REF
// "@sha256:<hex>"). A docker-archive REF that starts with "@" must be a
// number or a digest.
//
// A string without a known transport is a plain layout directory, unless
// it looks like "name:rest" with a name that could be a transport and does
// not exist as a path: that is an unknown transport (ErrInvalidSource), so
// that "docker://busybox" is refused rather than looked for on disk.
// ParseSource only inspects the file system to split paths; OpenSource does
// the opening.
func ParseSource(s string) (Source, error) {
	if s == "" {
		return Source{}, fmt.Errorf("%w: empty source", ErrInvalidSource)
	}
	tr, rest, hasColon := strings.Cut(s, ":")
	switch tr {
	case TransportOCI, TransportOCIArchive, TransportDockerArchive:
		if rest == "" {
			return Source{}, fmt.Errorf("%w: %q: no path after %q", ErrInvalidSource, short(s), tr+":")
		}
		p, ref := splitPathRef(rest, tr == TransportOCI, tr != TransportDockerArchive)
		if p == "" {
			return Source{}, fmt.Errorf("%w: %q: empty path", ErrInvalidSource, short(s))
		}
		if tr == TransportDockerArchive {
			if err := checkDockerArchiveRef(ref); err != nil {
				return Source{}, fmt.Errorf("%w: %q: %v", ErrInvalidSource, short(s), err)
			}
		}
		return Source{Transport: tr, Path: p, Ref: ref}, nil
	case TransportDir:
		if rest == "" {
			return Source{}, fmt.Errorf("%w: %q: no path after \"dir:\"", ErrInvalidSource, short(s))
		}
		return Source{Transport: TransportDir, Path: rest}, nil
	}
	if hasColon && looksLikeTransport(tr) {
		if _, err := os.Lstat(s); err != nil {
			return Source{}, fmt.Errorf("%w: unknown transport %q in %q (supported: oci:, oci-archive:, docker-archive:, dir:, or a plain layout directory; no file %q exists)",
				ErrInvalidSource, short(tr), short(s), short(s))
		}
	}
	return Source{Transport: TransportOCI, Path: s}, nil
}

func looksLikeTransport(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// splitPathRef splits "PATH[:REF]" (see ParseSource). wantDir tells which
// kind of path counts as existing for a split; digestForm allows
// "PATH@sha256:<hex>".
func splitPathRef(rest string, wantDir, digestForm bool) (string, string) {
	if _, err := os.Stat(rest); err == nil {
		return rest, ""
	}
	exists := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && st.IsDir() == wantDir
	}
	best, bestRef := "", ""
	for i := 1; i < len(rest); i++ {
		switch {
		case rest[i] == ':':
			if exists(rest[:i]) {
				best, bestRef = rest[:i], rest[i+1:]
			}
		case rest[i] == '@' && digestForm && isDigestRef(rest[i:]):
			if exists(rest[:i]) {
				best, bestRef = rest[:i], rest[i:]
			}
		}
	}
	if best != "" {
		return best, bestRef
	}
	if digestForm {
		if i := strings.Index(rest, "@sha256:"); i > 0 && !strings.Contains(rest[:i], ":") {
			return rest[:i], rest[i:]
		}
		if i := strings.Index(rest, "@sha512:"); i > 0 && !strings.Contains(rest[:i], ":") {
			return rest[:i], rest[i:]
		}
	}
	p, ref, _ := strings.Cut(rest, ":")
	return p, ref
}

func isDigestRef(s string) bool {
	s = strings.TrimPrefix(s, "@")
	return checkDigest(digest.Digest(s)) == nil
}

// parseIndexRef parses the docker-archive ref "@N".
func parseIndexRef(ref string) (int, bool) {
	ns, ok := strings.CutPrefix(ref, "@")
	if !ok || ns == "" || len(ns) > 9 {
		return 0, false
	}
	for i := 0; i < len(ns); i++ {
		if ns[i] < '0' || ns[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(ns)
	return n, err == nil
}

func checkDockerArchiveRef(ref string) error {
	if !strings.HasPrefix(ref, "@") {
		return nil
	}
	if _, ok := parseIndexRef(ref); ok || isDigestRef(ref) {
		return nil
	}
	return fmt.Errorf("ref %q: want @N (an image number) or @sha256:<hex>", short(ref))
}

// OpenSource opens the image source src: an OCI layout directory (oci, or
// Transport ""; the same as Open), a tar file of an OCI layout
// (oci-archive), docker save output (docker-archive) or a containers/image
// dir: directory (dir). src.Ref is not used here: pass it as Select.Ref to
// Resolve. The returned Layout serves Resolve, OpenBlob, ReadBlob, Refs and
// Index the same way for every transport; call Close when done with it.
//
// Archives are read in place: one pass over the tar headers (skipping the
// data with Seek) maps the members, and blobs are served as sections of the
// file through the verifying reader; nothing is extracted. Member names
// with or without a leading "./" are accepted; absolute names and names
// with ".." are ignored; symlinks and hard links between members are
// followed (docker and skopeo write layer.tar symlinks) but never out of
// the archive; when a name occurs more than once the last entry wins, as
// when the tar is extracted. A gzip- or zstd-compressed archive, a file that
// is not a tar, a truncated tar and a tar without the expected members are
// ErrNotLayout, naming the file and what is missing.
//
// docker-archive: when the archive holds an OCI layout (index.json and
// oci-layout, as docker 25+ writes) that is used, and Select.Ref also matches
// the io.containerd.image.name annotations and the manifest.json RepoTags
// (mapped to index.json entries by name or by config digest). Otherwise
// (legacy format) an index and one Docker schema 2 manifest per
// manifest.json entry are synthesized: the config descriptor has the
// Docker config media type and the sha256 of the config file; an
// uncompressed layer file gets application/vnd.docker.image.rootfs.diff.tar
// and, as its digest, the config's rootfs.diff_ids entry (equal by
// definition, and checked by the verifying reader when the layer is read,
// so OpenSource reads no layer data for it); a gzip layer file gets
// ...rootfs.diff.tar.gzip and a zstd one the OCI tar+zstd type, and those
// are hashed once here (docker and skopeo write uncompressed layers, so
// this is rare). The manifest's digest is the sha256 of its JSON
// (encoding/json of v1.Manifest, deterministic). Each index entry carries
// the first RepoTag as its ref name; all RepoTags match Select.Ref, as
// written or normalized (busybox:1.35 = docker.io/library/busybox:1.35),
// and so does "@N". An entry whose config or layer file is missing or
// unusable does not fail OpenSource: resolving that image returns the
// error (until then its index.json descriptor carries the sha256 of the
// manifest.json entry in place of a manifest digest). Symlinks are
// followed for members themselves, not for directories on their path.
//
// dir: manifest.json is the image manifest (OCI or Docker schema 2; a
// manifest list after `skopeo copy --all`, with the instance manifests in
// <hex>.manifest.json) and stands in for index.json as its only entry,
// with the sha256 of manifest.json as its digest; blobs are DIR/<hex>. A
// version file, if present, must start with "Directory Transport Version: ".
func OpenSource(src Source, opts OpenOptions) (*Layout, error) {
	if src.Path == "" {
		return nil, fmt.Errorf("%w: %s: empty path", ErrInvalidSource, src)
	}
	var l *Layout
	var err error
	switch src.Transport {
	case "", TransportOCI:
		src.Transport = TransportOCI
		l, err = Open(src.Path, opts)
	case TransportOCIArchive:
		l, err = openOCIArchive(src.Path, opts)
	case TransportDockerArchive:
		l, err = openDockerArchive(src.Path, opts)
	case TransportDir:
		l, err = openDirTransport(src.Path, opts)
	default:
		return nil, fmt.Errorf("%w: unknown transport %q (supported: %s, %s, %s, %s)", ErrInvalidSource, short(src.Transport),
			TransportOCI, TransportOCIArchive, TransportDockerArchive, TransportDir)
	}
	if err != nil {
		return nil, err
	}
	l.src = src
	return l, nil
}

func openOCIArchive(p string, opts OpenOptions) (*Layout, error) {
	ts, err := openTarStore(p)
	if err != nil {
		return nil, err
	}
	l := &Layout{dir: p, limits: opts.Limits.Normalized(), st: ts}
	if err := checkOCIMembers(ts); err != nil {
		ts.close()
		return nil, err
	}
	if err := l.loadOCI(); err != nil {
		ts.close()
		return nil, err
	}
	return l, nil
}

// checkOCIMembers reports which of oci-layout and index.json a tar lacks.
func checkOCIMembers(ts *tarStore) error {
	var missing []string
	for _, n := range []string{v1.ImageLayoutFile, v1.ImageIndexFile} {
		if _, err := ts.lookup(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	hint := ""
	if _, err := ts.lookup("manifest.json"); err == nil {
		hint = " (it has manifest.json: for docker save output use docker-archive:)"
	}
	return fmt.Errorf("%w: %s is not an OCI layout archive: no %s member%s", ErrNotLayout, ts.path, strings.Join(missing, " or "), hint)
}

func openDirTransport(dir string, opts OpenOptions) (*Layout, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotLayout, dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNotLayout, dir)
	}
	ds := &dirTransportStore{dir: dir}
	l := &Layout{dir: dir, limits: opts.Limits.Normalized(), st: ds}
	v, where, err := ds.file("version", 4096)
	switch {
	case err == nil:
		if !strings.HasPrefix(string(v), "Directory Transport Version: ") {
			return nil, fmt.Errorf("%w: %s does not start with \"Directory Transport Version: \"", ErrNotLayout, where)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	data, where, err := ds.file("manifest.json", l.limits.MaxJSONBytes)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return nil, err
		}
		hint := ""
		if _, err := os.Stat(filepath.Join(dir, v1.ImageLayoutFile)); err == nil {
			hint = " (it looks like an OCI layout: use oci:DIR)"
		}
		return nil, fmt.Errorf("%w: %s is not a dir: image: %w%s", ErrNotLayout, dir, err, hint)
	}
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := decodeObject(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
	}
	ds.manifest, ds.md = data, digest.FromBytes(data)
	l.indexPath = where
	l.index = v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{{MediaType: probe.MediaType, Digest: ds.md, Size: int64(len(data))}},
	}
	l.names = make([][]string, 1)
	return l, nil
}
