package ociread

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/limits"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxLinkHops bounds how many symlinks and hard links are followed to reach
// a member.
const maxLinkHops = 16

// member is one usable entry of a tar file: a regular file's data range, or
// a link to another member.
type member struct {
	name   string // cleaned name, the key of tarStore.members
	link   byte   // 0 for a regular file, tar.TypeSymlink or tar.TypeLink
	target string // link target as written in the header
	offset int64  // of the data, in the tar file
	size   int64
}

// tarStore serves a tar file's members in place: blobs are io.SectionReaders
// over the open file, at the offsets found by one scan of the headers. It
// also holds what a docker-archive needs beyond the tar: synthesized
// documents (mem), blobs found under other names (byDigest) and blobs that
// could not be prepared (errs).
type tarStore struct {
	path     string
	f        *os.File
	fileSize int64
	members  map[string]*member
	closed   atomic.Bool

	mem      map[digest.Digest]memBlob
	byDigest map[digest.Digest]string // blob digest -> member name
	errs     map[digest.Digest]error
}

// memBlob is a document held in memory, e.g. a manifest synthesized from a
// docker-archive's manifest.json.
type memBlob struct {
	data  []byte
	where string
}

// openTarStore opens the tar file at p and maps its members. Member names are
// cleaned (a leading "./" or "/" ... see cleanMemberName); names that are
// absolute or contain ".." are ignored. When a name occurs more than once the
// last entry wins, as when the tar is extracted. Directories and other
// non-file entries are not mapped (and hide an earlier file of the same
// name); sparse files are not mapped either (their data is not one range).
func openTarStore(p string) (*tarStore, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	s, err := scanTar(f, p)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func scanTar(f *os.File, p string) (*tarStore, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (mode %s)", ErrNotLayout, p, st.Mode().Type())
	}
	var magic [4]byte
	if n, _ := f.ReadAt(magic[:], 0); n == len(magic) {
		if c, ok := layerz.Sniff(magic[:]); ok && c != layerz.None {
			return nil, fmt.Errorf("%w: %s is %s-compressed; ociread reads uncompressed tar files in place, decompress it first", ErrNotLayout, p, c)
		}
	}
	s := &tarStore{
		path: p, f: f, fileSize: st.Size(), members: map[string]*member{},
		mem: map[digest.Digest]memBlob{}, byDigest: map[digest.Digest]string{}, errs: map[digest.Digest]error{},
	}
	// archive/tar skips member data with Seek; the section's offset is
	// the position of the next byte archive/tar reads.
	sr := io.NewSectionReader(f, 0, st.Size())
	pos := func() int64 { p, _ := sr.Seek(0, io.SeekCurrent); return p }
	tr := tar.NewReader(sr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not a valid tar file (error after %d bytes): %v", ErrNotLayout, p, pos(), err)
		}
		name, ok := cleanMemberName(hdr.Name)
		if !ok {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			if layerz.IsSparse(hdr) {
				delete(s.members, name)
				continue
			}
			if hdr.Size < 0 || pos()+hdr.Size > s.fileSize {
				return nil, fmt.Errorf("%w: %s is truncated: member %q needs %d bytes at offset %d, the file has %d bytes",
					ErrNotLayout, p, short(hdr.Name), hdr.Size, pos(), s.fileSize)
			}
			s.members[name] = &member{name: name, offset: pos(), size: hdr.Size}
		case tar.TypeSymlink, tar.TypeLink:
			s.members[name] = &member{name: name, link: hdr.Typeflag, target: hdr.Linkname}
		default:
			delete(s.members, name)
		}
	}
	return s, nil
}

// cleanMemberName turns a tar member name into the name it is looked up by:
// "./index.json" and "index.json" are both "index.json", "blobs//sha256/x"
// is "blobs/sha256/x". Absolute names, names with a ".." element and names
// that clean to nothing are refused: they are never mapped.
func cleanMemberName(name string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", false
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", false
		}
	}
	c := path.Clean(name)
	if c == "." || c == "" {
		return "", false
	}
	return c, true
}

func (s *tarStore) where(name string) string { return s.path + "!/" + name }

// lookup returns the regular-file member name refers to, following
// symlinks (relative to the link's directory) and hard links (archive
// names). Links that leave the archive's root are not followed.
func (s *tarStore) lookup(name string) (*member, error) {
	orig := name
	for hop := 0; hop <= maxLinkHops; hop++ {
		m, ok := s.members[name]
		if !ok {
			if name == orig {
				return nil, errMissing("%s has no member %q", s.path, short(orig))
			}
			return nil, errMissing("%s: member %q links to %q, which is not in the archive", s.path, short(orig), short(name))
		}
		var target string
		switch m.link {
		case 0:
			return m, nil
		case tar.TypeSymlink:
			if strings.HasPrefix(m.target, "/") {
				return nil, errMissing("%s: member %q is a symlink to the absolute path %q", s.path, short(orig), short(m.target))
			}
			target = path.Join(path.Dir(m.name), m.target)
		default:
			target = m.target
		}
		next, ok := cleanMemberName(target)
		if !ok {
			return nil, errMissing("%s: member %q links outside the archive (%q)", s.path, short(orig), short(m.target))
		}
		name = next
	}
	return nil, errMissing("%s: member %q: more than %d links", s.path, short(orig), maxLinkHops)
}

func (s *tarStore) section(m *member) *io.SectionReader {
	return io.NewSectionReader(s.f, m.offset, m.size)
}

// readMember reads the whole member name, refusing more than max bytes.
func (s *tarStore) readMember(name string, max int64) ([]byte, *member, error) {
	m, err := s.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	if m.size > max {
		return nil, nil, limits.New("MaxJSONBytes", max, fmt.Sprintf("%s is %d bytes", s.where(m.name), m.size))
	}
	buf := make([]byte, m.size)
	if _, err := s.f.ReadAt(buf, m.offset); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", s.where(m.name), err)
	}
	return buf, m, nil
}

// hashMember returns the sha256 digest of member m's data.
func (s *tarStore) hashMember(m *member) (digest.Digest, error) {
	h := sha256.New()
	if _, err := io.Copy(h, s.section(m)); err != nil {
		return "", fmt.Errorf("reading %s: %w", s.where(m.name), err)
	}
	return digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
}

func (s *tarStore) file(name string, max int64) ([]byte, string, error) {
	data, m, err := s.readMember(name, max)
	if err != nil {
		return nil, s.where(name), err
	}
	return data, s.where(m.name), nil
}

func (s *tarStore) blob(d digest.Digest) (storedBlob, error) {
	if s.closed.Load() {
		return storedBlob{}, fmt.Errorf("%s: %w (the Layout was closed)", s.path, os.ErrClosed)
	}
	if err, ok := s.errs[d]; ok {
		return storedBlob{}, err
	}
	if mb, ok := s.mem[d]; ok {
		return storedBlob{r: bytes.NewReader(mb.data), size: int64(len(mb.data)), where: mb.where}, nil
	}
	name, ok := s.byDigest[d]
	if !ok {
		alg, enc, _ := strings.Cut(string(d), ":")
		name = v1.ImageBlobsDir + "/" + alg + "/" + enc
	}
	m, err := s.lookup(name)
	if err != nil {
		return storedBlob{}, err
	}
	return storedBlob{r: s.section(m), size: m.size, where: s.where(m.name)}, nil
}

func (s *tarStore) close() error {
	s.closed.Store(true)
	if err := s.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
