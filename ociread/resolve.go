package ociread

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/limits"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Select describes which image Resolve picks.
//
// Ref is a ref name as written in the org.opencontainers.image.ref.name
// annotation of index.json (e.g. "24.04", "latest"). Failing that, it is
// compared with the other names of index.json entries (see Layout.Refs):
// the io.containerd.image.name annotation that containerd, nerdctl and
// docker 25+ write, and, for docker-archive sources, the manifest.json
// RepoTags; first as written, then as normalized docker references, so
// that "busybox:1.35", "docker.io/library/busybox:1.35" and
// "index.docker.io/library/busybox:1.35" are the same name and "busybox"
// means "busybox:latest". Image.RefName is then the name as stored. For
// docker-archive sources "@N" selects the N-th image (from 0) of the
// archive's manifest.json, as in skopeo. A ref of the form
// "sha256:<hex>", "sha512:<hex>" or "@sha256:<hex>" that is not itself a
// name selects by digest, matching any descriptor of index.json or of an
// index nested below it. An empty Ref picks the only image of index.json;
// several descriptors count as one image if they all carry the same ref name,
// or all carry no ref name and a platform.
//
// When the selection is an image manifest, it is used as is, without a
// Platform; with one, the config's os, architecture and variant must match
// it (by the rules below), else the error wraps ErrPlatformNotFound and
// names both. When it is an
// image index (or several descriptors share the ref), indexes are followed
// (depth-limited, cycle-checked) and the manifest for Platform is chosen.
// Attestation manifests (platform unknown/unknown or a
// vnd.docker.reference.type annotation), descriptors with an artifactType and
// manifests whose config is not an image config are skipped.
//
// Platform matching: OS and architecture must be equal. If Platform has a
// variant, the candidate's must be equal, where a missing variant counts as
// the architecture's default (arm64: v8, arm: v7, amd64: v1). If Platform has
// no variant, the default variant (or none) is preferred; failing that, on
// arm, arm64 and amd64 the highest numbered variant not above the default
// (so linux/arm takes v6 when there is no v7, but never v8), and on other
// architectures any variant. Among equally good candidates the first in
// index order wins. Platform nil means DefaultPlatform(): linux/GOARCH.
type Select struct {
	Ref      string
	Platform *v1.Platform
}

// Image is a resolved, verified image: its manifest and config were read
// through the verifying reader; its layers were not read.
type Image struct {
	// RefName is the ref name through which the image was found, if any
	// (for a digest selection, "@N" or no Ref, the ref name annotation of
	// the index.json entry that led there; for a match by another name,
	// that name as stored, e.g. the RepoTag "docker.io/library/busybox:1.35").
	RefName string
	// ManifestDescriptor describes the chosen image manifest. An empty
	// media type is filled in from the manifest itself, and a missing
	// platform from the config's os/architecture/variant.
	ManifestDescriptor v1.Descriptor
	// Manifest is the parsed manifest. Docker schema 2 manifests are
	// decoded field-for-field; media types are kept as written.
	Manifest         v1.Manifest
	ConfigDescriptor v1.Descriptor
	// Config is the parsed config (OCI or Docker config JSON).
	Config v1.Image
	// RawConfig holds the exact config bytes, for fields Config lacks.
	RawConfig []byte
	// Layers are the manifest's layers, in order; their media types
	// satisfy IsLayerMediaType and their digests are valid.
	Layers []v1.Descriptor
	// DiffIDs are the config's rootfs.diff_ids, one per layer.
	DiffIDs []digest.Digest
}

// Resolve picks the image described by sel (see Select), reads and verifies
// its manifest and config, and checks them: config and layer media types
// must be supported, digests valid, and rootfs.diff_ids must have one entry
// per layer (ErrMalformed otherwise). ctx is checked between blob reads.
func (l *Layout) Resolve(ctx context.Context, sel Select) (*Image, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	want, err := wantedPlatform(sel.Platform)
	if err != nil {
		return nil, err
	}
	r := &resolver{
		l:        l,
		ctx:      ctx,
		docs:     map[docKey]*doc{},
		images:   map[docKey]*Image{},
		expanded: map[digest.Digest]bool{},
	}
	if err := r.checkCtx(); err != nil {
		return nil, err
	}
	starts, scope, err := r.starts(sel.Ref)
	if err != nil {
		return nil, err
	}
	if len(starts) == 1 {
		k, err := r.kindOf(starts[0])
		if err != nil {
			return nil, err
		}
		switch k {
		case kindManifest:
			img, err := r.image(starts[0])
			if err != nil {
				return nil, err
			}
			return checkImagePlatform(img, sel.Platform, want, starts[0].where)
		case kindUnknown:
			return nil, fmt.Errorf("%w: %s: media type %q is neither an image manifest nor an image index",
				ErrUnsupportedMediaType, starts[0].where, short(starts[0].desc.MediaType))
		case kindIndex:
			scope += fmt.Sprintf(" (index %s)", starts[0].desc.Digest)
		}
	}
	var cands []cand
	for _, s := range starts {
		if err := r.expand(s, &cands); err != nil {
			return nil, err
		}
	}
	return r.pick(cands, want, scope)
}

func wantedPlatform(p *v1.Platform) (v1.Platform, error) {
	if p == nil {
		return DefaultPlatform(), nil
	}
	w := v1.Platform{OS: p.OS, Architecture: normArch(p.Architecture), Variant: p.Variant}
	if w.OS == "" || w.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("%w: Select.Platform %q: os and architecture are required", ErrInvalidPlatform, short(FormatPlatform(w)))
	}
	return w, nil
}

type docKind int

const (
	kindUnknown docKind = iota
	kindManifest
	kindIndex
)

type docKey struct {
	d    digest.Digest
	size int64
}

// doc is a parsed manifest or index blob.
type doc struct {
	kind      docKind
	mediaType string // effective media type: the document's, else the descriptor's
	manifest  v1.Manifest
	index     v1.Index
}

// cand is a descriptor found in index.json or a nested index.
type cand struct {
	desc  v1.Descriptor
	ref   string // ref name of the index.json entry it was reached from
	where string // "<dir>/index.json manifests[0]" or "index sha256:... manifests[2]"
	// path lists the indexes above the one holding the descriptor
	// (index.json excluded); len(path) is its nesting level.
	path []digest.Digest
}

// child returns the i-th descriptor of the index c.
func (c cand) child(i int, d v1.Descriptor) cand {
	return cand{
		desc:  d,
		ref:   c.ref,
		where: fmt.Sprintf("index %s manifests[%d]", c.desc.Digest, i),
		path:  append(c.path[:len(c.path):len(c.path)], c.desc.Digest),
	}
}

type resolver struct {
	l        *Layout
	ctx      context.Context
	docs     map[docKey]*doc
	images   map[docKey]*Image
	expanded map[digest.Digest]bool
}

func (r *resolver) checkCtx() error {
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("resolving image in %s: %w", r.l.dir, err)
	}
	return nil
}

func (r *resolver) topCand(i int) cand {
	d := r.l.index.Manifests[i]
	return cand{desc: d, ref: d.Annotations[v1.AnnotationRefName], where: fmt.Sprintf("%s manifests[%d]", r.l.indexPath, i)}
}

// starts finds the descriptors of index.json that sel.Ref designates. scope
// describes them for error messages.
func (r *resolver) starts(ref string) ([]cand, string, error) {
	top := r.l.index.Manifests
	if ref == "" {
		switch len(top) {
		case 0:
			return nil, "", fmt.Errorf("%w: %s lists no manifests", ErrRefNotFound, r.l.indexPath)
		case 1:
			return []cand{r.topCand(0)}, describeRef(r.topCand(0)), nil
		}
		first := top[0].Annotations[v1.AnnotationRefName]
		same, allPlatforms := true, true
		for _, d := range top {
			same = same && d.Annotations[v1.AnnotationRefName] == first
			allPlatforms = allPlatforms && d.Platform != nil
		}
		if same && (first != "" || allPlatforms) {
			cs := make([]cand, len(top))
			for i := range top {
				cs[i] = r.topCand(i)
			}
			if first != "" {
				return cs, fmt.Sprintf("ref %q", first), nil
			}
			return cs, r.l.indexPath, nil
		}
		return nil, "", fmt.Errorf("%w: no ref given and %s holds %d images; choose one of: %s",
			ErrAmbiguous, r.l.indexPath, len(top), r.listTop())
	}

	if is := r.l.matchAnnotation(ref); len(is) > 0 {
		cs := make([]cand, len(is))
		for k, i := range is {
			cs[k] = r.topCand(i)
		}
		return cs, fmt.Sprintf("ref %q", ref), nil
	}
	if is, names := r.l.matchNames(ref); len(is) > 0 {
		cs := make([]cand, len(is))
		for k, i := range is {
			cs[k] = r.topCand(i)
			cs[k].ref = names[k]
		}
		return cs, fmt.Sprintf("ref %q", ref), nil
	}
	if n, ok := parseIndexRef(ref); ok && r.l.numbered != nil {
		if n >= len(r.l.numbered) {
			return nil, "", fmt.Errorf("%w: ref %q: %s lists %d images (@0 to @%d); available: %s",
				ErrRefNotFound, ref, r.l.dir, len(r.l.numbered), len(r.l.numbered)-1, r.listTop())
		}
		i := r.l.numbered[n]
		if i < 0 {
			return nil, "", fmt.Errorf("%w: ref %q: image %d of manifest.json in %s matches no entry of %s (by name or config digest); available: %s",
				ErrRefNotFound, ref, n, r.l.dir, r.l.indexPath, r.listTop())
		}
		return []cand{r.topCand(i)}, fmt.Sprintf("image %s", ref), nil
	}

	ds, isDigest := strings.CutPrefix(ref, "@")
	isDigest = isDigest || strings.HasPrefix(ds, "sha256:") || strings.HasPrefix(ds, "sha512:")
	if !isDigest {
		return nil, "", fmt.Errorf("%w: ref %q is not in %s; available: %s", ErrRefNotFound, short(ref), r.l.indexPath, r.listTop())
	}
	d := digest.Digest(ds)
	if err := checkDigest(d); err != nil {
		return nil, "", fmt.Errorf("selecting %q: %w", short(ref), err)
	}
	c, ok, err := r.findDigest(d)
	if err != nil {
		return nil, "", err
	}
	clear(r.expanded)
	if !ok {
		return nil, "", fmt.Errorf("%w: no manifest or index with digest %s in %s or the indexes below it; available: %s",
			ErrRefNotFound, d, r.l.indexPath, r.listTop())
	}
	return []cand{c}, "digest " + string(d), nil
}

func describeRef(c cand) string {
	if c.ref != "" {
		return fmt.Sprintf("ref %q", c.ref)
	}
	return c.where
}

// matchAnnotation returns the index.json entries whose ref name annotation
// is ref.
func (l *Layout) matchAnnotation(ref string) []int {
	var is []int
	for i, d := range l.index.Manifests {
		if d.Annotations[v1.AnnotationRefName] == ref {
			is = append(is, i)
		}
	}
	return is
}

// matchNames returns the index.json entries with a name (see Layout.names)
// equal to ref or, failing that, equal to it as normalized docker
// references, and the name that matched for each.
func (l *Layout) matchNames(ref string) ([]int, []string) {
	var is []int
	var names []string
	for i, ns := range l.names {
		for _, n := range ns {
			if n == ref {
				is, names = append(is, i), append(names, n)
				break
			}
		}
	}
	if len(is) > 0 {
		return is, names
	}
	nref, ok := normalizeDockerRef(ref)
	if !ok {
		return nil, nil
	}
	for i, ns := range l.names {
		for _, n := range ns {
			if nn, ok := normalizeDockerRef(n); ok && nn == nref {
				is, names = append(is, i), append(names, n)
				break
			}
		}
	}
	return is, names
}

// listTop lists the entries of index.json (ref name and digest) for error
// messages, capped at 20.
func (r *resolver) listTop() string {
	const max = 20
	top := r.l.index.Manifests
	if len(top) == 0 {
		return "none (index.json lists no manifests)"
	}
	var parts []string
	for i, d := range top {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(top)-max))
			break
		}
		name := "<no ref name>"
		var names []string
		if ref := d.Annotations[v1.AnnotationRefName]; ref != "" {
			names = append(names, fmt.Sprintf("%q", short(ref)))
		}
		if i < len(r.l.names) {
			for _, n := range r.l.names[i] {
				if n != d.Annotations[v1.AnnotationRefName] {
					names = append(names, fmt.Sprintf("%q", short(n)))
				}
			}
		}
		if len(names) > 0 {
			name = strings.Join(names, " aka ")
		}
		for n, ti := range r.l.numbered {
			if ti == i {
				name = fmt.Sprintf("@%d %s", n, name)
				break
			}
		}
		s := fmt.Sprintf("%s (%s", name, short(string(d.Digest)))
		if d.Platform != nil {
			s += ", " + FormatPlatform(*d.Platform)
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, ", ")
}

// findDigest looks for a descriptor with digest d in index.json, then
// breadth-first through the indexes below it.
func (r *resolver) findDigest(d digest.Digest) (cand, bool, error) {
	var queue []cand
	for i, desc := range r.l.index.Manifests {
		c := r.topCand(i)
		if desc.Digest == d {
			return c, true, nil
		}
		queue = append(queue, c)
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		dc, err := r.openIndex(c)
		if err != nil {
			return cand{}, false, err
		}
		if dc == nil {
			continue
		}
		for i, child := range dc.index.Manifests {
			cc := c.child(i, child)
			if child.Digest == d {
				return cc, true, nil
			}
			queue = append(queue, cc)
		}
	}
	return cand{}, false, nil
}

// openIndex returns the parsed index c, or nil if c is not an index or was
// already opened during this resolution. It enforces MaxIndexDepth and
// detects cycles.
func (r *resolver) openIndex(c cand) (*doc, error) {
	k, err := r.kindOf(c)
	if err != nil || k != kindIndex {
		return nil, err
	}
	if slices.Contains(c.path, c.desc.Digest) {
		return nil, fmt.Errorf("%w: %s refers to index %s, which contains it", ErrCycle, c.where, c.desc.Digest)
	}
	if depth := len(c.path) + 1; depth > r.l.limits.MaxIndexDepth {
		return nil, limits.New("MaxIndexDepth", int64(r.l.limits.MaxIndexDepth),
			fmt.Sprintf("%s: index %s would be nested %d levels deep", c.where, c.desc.Digest, depth))
	}
	if r.expanded[c.desc.Digest] {
		return nil, nil // seen through another path: adds nothing new
	}
	r.expanded[c.desc.Digest] = true
	return r.readDoc(c)
}

// expand appends to out the image manifests reachable from c, following
// indexes. It skips attestations, artifacts and unknown media types.
func (r *resolver) expand(c cand, out *[]cand) error {
	k, err := r.kindOf(c)
	if err != nil {
		return err
	}
	if k == kindManifest {
		if !skippable(c.desc) {
			*out = append(*out, c)
		}
		return nil
	}
	dc, err := r.openIndex(c)
	if err != nil || dc == nil {
		return err
	}
	for i, child := range dc.index.Manifests {
		if err := r.expand(c.child(i, child), out); err != nil {
			return err
		}
	}
	return nil
}

// skippable reports descriptors that are never container images: buildx
// attestations and artifacts.
func skippable(d v1.Descriptor) bool {
	return isUnknownPlatform(d.Platform) || d.Annotations[annotationDockerReferenceType] != "" || d.ArtifactType != ""
}

// pick chooses among image manifest candidates the best match for want.
func (r *resolver) pick(cands []cand, want v1.Platform, scope string) (*Image, error) {
	type scored struct {
		c    cand
		plat v1.Platform
		rank int
	}
	var all, matches []scored
	var learnErr error // first failure to read a platform-less candidate
	for _, c := range cands {
		var p v1.Platform
		if c.desc.Platform != nil {
			p = *c.desc.Platform
		} else {
			// No platform in the descriptor: the config tells. A
			// candidate that cannot be read only matters if nothing
			// else matches.
			img, err := r.image(c)
			if errors.Is(err, errNotImage) {
				continue
			}
			if err != nil {
				if r.ctx.Err() != nil {
					return nil, err
				}
				if learnErr == nil {
					learnErr = err
				}
				continue
			}
			p = img.Config.Platform
			if p.OS == "" && p.Architecture == "" {
				continue
			}
		}
		s := scored{c: c, plat: p, rank: matchRank(want, p)}
		all = append(all, s)
		if s.rank > 0 {
			matches = append(matches, s)
		}
	}
	sort.SliceStable(matches, func(i, j int) bool { return matches[i].rank > matches[j].rank })
	notImage := map[docKey]bool{}
	for _, m := range matches {
		img, err := r.image(m.c)
		if errors.Is(err, errNotImage) {
			notImage[docKey{m.c.desc.Digest, m.c.desc.Size}] = true
			continue
		}
		return img, err
	}
	if learnErr != nil {
		return nil, fmt.Errorf("no readable image for %s in %s: %w", FormatPlatform(want), scope, learnErr)
	}
	var avail []string
	for _, s := range all {
		if notImage[docKey{s.c.desc.Digest, s.c.desc.Size}] {
			continue
		}
		if p := FormatPlatform(s.plat); !slices.Contains(avail, p) {
			avail = append(avail, p)
		}
	}
	list := "none"
	if len(avail) > 0 {
		if len(avail) > 30 {
			avail = append(avail[:30], fmt.Sprintf("and %d more", len(avail)-30))
		}
		list = strings.Join(avail, ", ")
	}
	return nil, fmt.Errorf("%w: no image for %s in %s of %s; available: %s",
		ErrPlatformNotFound, FormatPlatform(want), scope, r.l.dir, list)
}

// kindOf tells whether c is a manifest or an index, reading the blob only
// when the descriptor has no media type.
func (r *resolver) kindOf(c cand) (docKind, error) {
	switch mt := c.desc.MediaType; {
	case isManifestMediaType(mt):
		return kindManifest, nil
	case isIndexMediaType(mt):
		return kindIndex, nil
	case mt != "":
		return kindUnknown, nil
	}
	dc, err := r.readDoc(c)
	if err != nil {
		return kindUnknown, err
	}
	return dc.kind, nil
}

func mediaTypeKind(mt string) docKind {
	switch {
	case isManifestMediaType(mt):
		return kindManifest
	case isIndexMediaType(mt):
		return kindIndex
	}
	return kindUnknown
}

// readDoc reads, verifies and parses the manifest or index blob of c.
func (r *resolver) readDoc(c cand) (*doc, error) {
	key := docKey{c.desc.Digest, c.desc.Size}
	if dc, ok := r.docs[key]; ok {
		return dc, nil
	}
	if err := r.checkCtx(); err != nil {
		return nil, err
	}
	if err := checkDescriptor(c.desc, c.where); err != nil {
		return nil, err
	}
	dmt := c.desc.MediaType
	if dmt != "" && mediaTypeKind(dmt) == kindUnknown {
		return nil, fmt.Errorf("%w: %s: %s has media type %q", ErrUnsupportedMediaType, c.where, c.desc.Digest, short(dmt))
	}
	max := r.l.limits.MaxJSONBytes
	if c.desc.Size > max {
		return nil, limits.New("MaxJSONBytes", max, fmt.Sprintf("%s: %s is %d bytes", c.where, c.desc.Digest, c.desc.Size))
	}
	data, err := r.l.ReadBlob(c.desc, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.where, err)
	}
	name := fmt.Sprintf("%s: blob %s", c.where, c.desc.Digest)
	var probe struct {
		SchemaVersion *int            `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Layers        json.RawMessage `json:"layers"`
		Config        json.RawMessage `json:"config"`
	}
	if err := decodeObject(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	if probe.SchemaVersion != nil && *probe.SchemaVersion == 1 {
		return nil, fmt.Errorf("%w: %s is a Docker schema 1 manifest (schemaVersion 1)", ErrUnsupportedMediaType, name)
	}
	dc := &doc{mediaType: probe.MediaType}
	switch {
	case probe.MediaType != "":
		dc.kind = mediaTypeKind(probe.MediaType)
		if dc.kind == kindUnknown {
			return nil, fmt.Errorf("%w: %s has mediaType %q", ErrUnsupportedMediaType, name, short(probe.MediaType))
		}
		if dmt != "" && mediaTypeKind(dmt) != dc.kind {
			return nil, fmt.Errorf("%w: %s: descriptor media type %q but the document says %q", ErrMalformed, name, dmt, probe.MediaType)
		}
	case dmt != "":
		dc.kind = mediaTypeKind(dmt)
		dc.mediaType = dmt
	case probe.Manifests != nil:
		dc.kind = kindIndex
		dc.mediaType = v1.MediaTypeImageIndex
	case probe.Layers != nil || probe.Config != nil:
		dc.kind = kindManifest
		dc.mediaType = v1.MediaTypeImageManifest
	default:
		return nil, fmt.Errorf("%w: %s has no mediaType and neither \"manifests\" nor \"layers\"", ErrMalformed, name)
	}
	if probe.SchemaVersion == nil || *probe.SchemaVersion != 2 {
		sv := "missing"
		if probe.SchemaVersion != nil {
			sv = fmt.Sprint(*probe.SchemaVersion)
		}
		return nil, fmt.Errorf("%w: %s: schemaVersion is %s, want 2", ErrMalformed, name, sv)
	}
	var err2 error
	if dc.kind == kindIndex {
		err2 = json.Unmarshal(data, &dc.index)
	} else {
		err2 = json.Unmarshal(data, &dc.manifest)
	}
	if err2 != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err2)
	}
	r.docs[key] = dc
	return dc, nil
}

// configDoc decodes a config, taking "created" apart so that an empty
// string is accepted as "unset".
type configDoc struct {
	v1.Image
	Created json.RawMessage `json:"created,omitempty"`
}

// image loads the image manifest c and its config, and checks them.
func (r *resolver) image(c cand) (*Image, error) {
	key := docKey{c.desc.Digest, c.desc.Size}
	img, ok := r.images[key]
	if !ok {
		var err error
		img, err = r.loadImage(c)
		if err != nil {
			return nil, err
		}
		r.images[key] = img
	}
	out := *img
	out.RefName = c.ref
	return &out, nil
}

func (r *resolver) loadImage(c cand) (*Image, error) {
	dc, err := r.readDoc(c)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("manifest %s", c.desc.Digest)
	if dc.kind != kindManifest {
		return nil, fmt.Errorf("%w: %s: %s is an image index where an image manifest was expected", ErrMalformed, c.where, c.desc.Digest)
	}
	m := dc.manifest
	if m.Config.MediaType == "" {
		return nil, fmt.Errorf("%w: %s: config descriptor has no mediaType", ErrMalformed, name)
	}
	if !isConfigMediaType(m.Config.MediaType) {
		return nil, fmt.Errorf("%w: %w: %s: config media type %q is not an image config",
			ErrUnsupportedMediaType, errNotImage, name, short(m.Config.MediaType))
	}
	if err := checkDescriptor(m.Config, name+" config"); err != nil {
		return nil, err
	}
	for i, layer := range m.Layers {
		what := fmt.Sprintf("%s layers[%d]", name, i)
		if err := checkDescriptor(layer, what); err != nil {
			return nil, err
		}
		if !layerz.IsLayerMediaType(layer.MediaType) {
			return nil, fmt.Errorf("%w: %s (%s): layer media type %q", ErrUnsupportedMediaType, what, layer.Digest, short(layer.MediaType))
		}
	}

	if err := r.checkCtx(); err != nil {
		return nil, err
	}
	max := r.l.limits.MaxJSONBytes
	if m.Config.Size > max {
		return nil, limits.New("MaxJSONBytes", max, fmt.Sprintf("%s: config %s is %d bytes", name, m.Config.Digest, m.Config.Size))
	}
	raw, err := r.l.ReadBlob(m.Config, max)
	if err != nil {
		return nil, fmt.Errorf("%s config: %w", name, err)
	}
	cname := fmt.Sprintf("config %s of %s", m.Config.Digest, name)
	var cfg configDoc
	if err := decodeObject(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, cname, err)
	}
	if created := bytes.TrimSpace(cfg.Created); len(created) > 0 && !bytes.Equal(created, []byte("null")) && !bytes.Equal(created, []byte(`""`)) {
		var t time.Time
		if err := json.Unmarshal(created, &t); err != nil {
			return nil, fmt.Errorf("%w: %s: created: %v", ErrMalformed, cname, err)
		}
		cfg.Image.Created = &t
	}
	for i, d := range cfg.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return nil, fmt.Errorf("%s rootfs.diff_ids[%d]: %w", cname, i, err)
		}
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: %s lists %d rootfs.diff_ids but the manifest has %d layers",
			ErrMalformed, cname, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}

	md := cloneDescriptor(c.desc)
	if md.MediaType == "" {
		md.MediaType = dc.mediaType
	}
	if md.Platform == nil && (cfg.OS != "" || cfg.Architecture != "") {
		md.Platform = clonePlatform(&cfg.Image.Platform)
	}
	return &Image{
		ManifestDescriptor: md,
		Manifest:           m,
		ConfigDescriptor:   m.Config,
		Config:             cfg.Image,
		RawConfig:          raw,
		Layers:             m.Layers,
		DiffIDs:            cfg.RootFS.DiffIDs,
	}, nil
}
