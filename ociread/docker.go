package ociread

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/ociclip/ociclip/layerz"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerEntry is one image of a docker save manifest.json.
type dockerEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func openDockerArchive(p string, opts OpenOptions) (*Layout, error) {
	ts, err := openTarStore(p)
	if err != nil {
		return nil, err
	}
	l := &Layout{dir: p, limits: opts.Limits.Normalized(), st: ts}
	if err := l.loadDockerArchive(ts); err != nil {
		ts.close()
		return nil, err
	}
	return l, nil
}

func (l *Layout) loadDockerArchive(ts *tarStore) error {
	var entries []dockerEntry
	var raws []json.RawMessage
	data, where, err := ts.file("manifest.json", l.limits.MaxJSONBytes)
	hasManifest := err == nil
	switch {
	case err == nil:
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '[' {
			return fmt.Errorf("%w: %s: want a JSON array of images", ErrMalformed, where)
		}
		if err := json.Unmarshal(data, &raws); err != nil {
			return fmt.Errorf("%w: %s: invalid JSON: %v", ErrMalformed, where, err)
		}
		entries = make([]dockerEntry, len(raws))
		for i, raw := range raws {
			if err := decodeObject(raw, &entries[i]); err != nil {
				return fmt.Errorf("%w: %s: entry %d: %v", ErrMalformed, where, i, err)
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}

	_, errLayout := ts.lookup(v1.ImageLayoutFile)
	_, errIndex := ts.lookup(v1.ImageIndexFile)
	if errLayout == nil && errIndex == nil {
		// docker 25+: an OCI layout, with manifest.json for old readers.
		if err := l.loadOCI(); err != nil {
			return err
		}
		if hasManifest {
			l.mapDockerEntries(ts, entries)
		}
		return nil
	}
	if !hasManifest {
		return fmt.Errorf("%w: %s is not a docker save archive: no manifest.json member (and no OCI layout: index.json and oci-layout)", ErrNotLayout, ts.path)
	}
	l.synthesizeDocker(ts, entries, raws, where)
	return nil
}

// mapDockerEntries ties the manifest.json entries of an archive that also
// holds an OCI layout to index.json entries: by name (a RepoTag matching a
// ref name or io.containerd.image.name), else by config digest (an
// index.json image manifest whose config is the entry's Config). Their
// RepoTags become names of that index.json entry, and "@N" selects it.
// Unreadable manifests are skipped here; Resolve reports them if chosen.
func (l *Layout) mapDockerEntries(ts *tarStore, entries []dockerEntry) {
	l.numbered = make([]int, len(entries))
	var configs []digest.Digest // config digest per index.json entry, "" unknown
	for j, e := range entries {
		idx := -1
		for _, tag := range e.RepoTags {
			if is := l.matchAnnotation(tag); len(is) > 0 {
				idx = is[0]
				break
			}
			if is, _ := l.matchNames(tag); len(is) > 0 {
				idx = is[0]
				break
			}
		}
		if idx < 0 {
			if configs == nil {
				configs = l.topConfigs()
			}
			if cd := ts.configDigest(e.Config, l.limits.MaxJSONBytes); cd != "" {
				for i, c := range configs {
					if c == cd {
						idx = i
						break
					}
				}
			}
		}
		l.numbered[j] = idx
		if idx < 0 {
			continue
		}
		for _, tag := range e.RepoTags {
			if tag != "" && !l.hasName(idx, tag) {
				l.names[idx] = append(l.names[idx], tag)
			}
		}
	}
}

// hasName reports whether index.json entry i already answers to name: as
// its ref name, or as one of its names, as written or normalized.
func (l *Layout) hasName(i int, name string) bool {
	if l.index.Manifests[i].Annotations[v1.AnnotationRefName] == name || containsString(l.names[i], name) {
		return true
	}
	nn, ok := normalizeDockerRef(name)
	if !ok {
		return false
	}
	for _, n := range l.names[i] {
		if x, ok := normalizeDockerRef(n); ok && x == nn {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// topConfigs reads the image manifests listed directly in index.json and
// returns their config digests ("" where unknown).
func (l *Layout) topConfigs() []digest.Digest {
	out := make([]digest.Digest, len(l.index.Manifests))
	for i, d := range l.index.Manifests {
		if d.MediaType != "" && !isManifestMediaType(d.MediaType) {
			continue
		}
		if checkDescriptor(d, "") != nil || d.Size > l.limits.MaxJSONBytes {
			continue
		}
		data, err := l.ReadBlob(d, l.limits.MaxJSONBytes)
		if err != nil {
			continue
		}
		var m struct {
			Config struct {
				Digest digest.Digest `json:"digest"`
			} `json:"config"`
		}
		if json.Unmarshal(data, &m) == nil && checkDigest(m.Config.Digest) == nil {
			out[i] = m.Config.Digest
		}
	}
	return out
}

// configDigest returns the digest of the config file name of a
// manifest.json entry: taken from a "blobs/sha256/<hex>" name, else the
// sha256 of the member ("" if it cannot be read).
func (ts *tarStore) configDigest(name string, max int64) digest.Digest {
	name, ok := cleanMemberName(name)
	if !ok {
		return ""
	}
	if rest, ok := strings.CutPrefix(name, v1.ImageBlobsDir+"/"); ok {
		if alg, enc, ok := strings.Cut(rest, "/"); ok {
			if d := digest.Digest(alg + ":" + enc); checkDigest(d) == nil {
				return d
			}
		}
	}
	data, _, err := ts.readMember(name, max)
	if err != nil {
		return ""
	}
	return digest.FromBytes(data)
}

// synthesizeDocker builds index.json and one Docker schema 2 manifest per
// manifest.json entry of a legacy docker save archive (see OpenSource).
func (l *Layout) synthesizeDocker(ts *tarStore, entries []dockerEntry, raws []json.RawMessage, where string) {
	l.indexPath = where
	l.index = v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: make([]v1.Descriptor, 0, len(entries)),
	}
	l.names = make([][]string, len(entries))
	l.numbered = make([]int, len(entries))
	for i, e := range entries {
		ename := fmt.Sprintf("%s entry %d", where, i)
		desc, err := l.synthesizeEntry(ts, e, ename)
		if err != nil {
			// Reported when this image is resolved: the descriptor
			// stands for the entry, its "blob" is the error.
			d := digest.FromBytes(raws[i])
			ts.errs[d] = &sourceError{err}
			desc = v1.Descriptor{MediaType: MediaTypeDockerManifest, Digest: d, Size: int64(len(raws[i]))}
		}
		var tags []string
		for _, t := range e.RepoTags {
			if t != "" && !containsString(tags, t) {
				tags = append(tags, t)
			}
		}
		if len(tags) > 0 {
			desc.Annotations = map[string]string{v1.AnnotationRefName: tags[0]}
		}
		l.index.Manifests = append(l.index.Manifests, desc)
		l.names[i] = tags
		l.numbered[i] = i
	}
}

func (l *Layout) synthesizeEntry(ts *tarStore, e dockerEntry, ename string) (v1.Descriptor, error) {
	max := l.limits.MaxJSONBytes
	if e.Config == "" {
		return v1.Descriptor{}, fmt.Errorf("%w: %s has no Config", ErrMalformed, ename)
	}
	cname, ok := cleanMemberName(e.Config)
	if !ok {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: Config %q is not a relative path inside the archive", ErrMalformed, ename, short(e.Config))
	}
	cfg, cm, err := ts.readMember(cname, max)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: config: %w", ErrBlobMissing, ename, err)
		}
		return v1.Descriptor{}, fmt.Errorf("%s: config: %w", ename, err)
	}
	var c struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := decodeObject(cfg, &c); err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: config %s: %v", ErrMalformed, ename, ts.where(cm.name), err)
	}
	cd := digest.FromBytes(cfg)
	pending := map[digest.Digest]string{cd: cm.name}

	layers := make([]v1.Descriptor, 0, len(e.Layers))
	for j, ln := range e.Layers {
		what := fmt.Sprintf("%s layer %d (%q)", ename, j, short(ln))
		name, ok := cleanMemberName(ln)
		if !ok {
			return v1.Descriptor{}, fmt.Errorf("%w: %s is not a relative path inside the archive", ErrMalformed, what)
		}
		m, err := ts.lookup(name)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: %w", ErrBlobMissing, what, err)
		}
		var magic [4]byte
		n, _ := ts.section(m).ReadAt(magic[:], 0)
		var d digest.Digest
		var mt string
		switch comp, _ := layerz.Sniff(magic[:n]); comp {
		case layerz.Gzip:
			mt = layerz.MediaTypeDockerLayerGzip
			d, err = ts.hashMember(m)
		case layerz.Zstd:
			mt = layerz.MediaTypeOCILayerZstd
			d, err = ts.hashMember(m)
		default:
			// An uncompressed tar: its digest is its DiffID.
			mt = layerz.MediaTypeDockerLayer
			if j >= len(c.RootFS.DiffIDs) {
				return v1.Descriptor{}, fmt.Errorf("%w: %s: config %s lists only %d rootfs.diff_ids for %d layers",
					ErrMalformed, what, ts.where(cm.name), len(c.RootFS.DiffIDs), len(e.Layers))
			}
			d = c.RootFS.DiffIDs[j]
			if err := checkDigest(d); err != nil {
				return v1.Descriptor{}, fmt.Errorf("%s: config rootfs.diff_ids[%d]: %w", what, j, err)
			}
		}
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: %w", ErrBlobMissing, what, err)
		}
		if _, ok := pending[d]; !ok {
			pending[d] = m.name
		}
		layers = append(layers, v1.Descriptor{MediaType: mt, Digest: d, Size: m.size})
	}
	man := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: MediaTypeDockerManifest,
		Config:    v1.Descriptor{MediaType: MediaTypeDockerConfig, Digest: cd, Size: int64(len(cfg))},
		Layers:    layers,
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: %v", ErrMalformed, ename, err)
	}
	md := digest.FromBytes(mb)
	for d, name := range pending {
		if _, ok := ts.byDigest[d]; !ok {
			ts.byDigest[d] = name
		}
	}
	ts.mem[md] = memBlob{data: mb, where: ename + " (synthesized manifest)"}
	return v1.Descriptor{MediaType: MediaTypeDockerManifest, Digest: md, Size: int64(len(mb))}, nil
}

// normalizeDockerRef returns the fully qualified form of a docker image
// reference: "busybox" and "busybox:latest" become
// "docker.io/library/busybox:latest", "index.docker.io/x/y:1" becomes
// "docker.io/x/y:1". ok is false for strings that are not plausibly image
// references. It is a lenient version of the distribution/reference rules,
// used only to compare names.
func normalizeDockerRef(s string) (string, bool) {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	name, dig, hasDigest := strings.Cut(s, "@")
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if tag == "" {
			return "", false
		}
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return "", false
	}
	domain, remainder := "docker.io", name
	if first, rest, ok := strings.Cut(name, "/"); ok &&
		(strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		domain, remainder = first, rest
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(remainder, "/") {
		remainder = "library/" + remainder
	}
	out := domain + "/" + remainder
	if tag == "" && !hasDigest {
		tag = "latest"
	}
	if tag != "" {
		out += ":" + tag
	}
	if hasDigest {
		out += "@" + dig
	}
	return out, true
}
