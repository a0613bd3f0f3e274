// Package clipstorage is a storage backend for clip's FUSE filesystem
// (storage.ClipStorageInterface) that reads files through ociclip's index:
// a read fetches and inflates only the spans of the layer it needs (package
// spans), from the local layout or an OCI registry (package blobs).
//
// The image service passes it to clip's own filesystem:
//
//	src, _ := blobs.NewRegistry("registry.example.com/team/app", blobs.RegistryOptions{})
//	s, _ := clipstorage.Open("app.clip", src, clipstorage.Options{})
//	cfs, _ := clip.NewFileSystem(s, clip.ClipFileSystemOpts{})
//	root, _ := cfs.Root()
//	server, _ := fuse.NewServer(fs.NewNodeFS(root, &fs.Options{}), mountPoint, &fuse.MountOptions{})
package clipstorage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"
	"github.com/beam-cloud/clip/pkg/storage"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/spans"
)

// Options configure a Storage. The zero value is usable.
type Options struct {
	// Spans configures the span engine (cache size and directory,
	// read-ahead, timeouts, the log of failed reads).
	Spans spans.Options
	// ReadTimeout bounds one ReadFile (0: 5 minutes): clip's FUSE reads
	// carry no context, and no read may hang forever.
	ReadTimeout time.Duration
	// Local reports the layer blobs as local to clip (CachedLocally).
	Local bool
}

// Storage implements clip's storage.ClipStorageInterface over ociclip's
// Reader.
type Storage struct {
	md   *common.ClipArchiveMetadata
	r    *ociclip.Reader
	src  spans.Source
	opts Options
	once sync.Once
	err  error
}

var _ storage.ClipStorageInterface = (*Storage)(nil)

// Open reads the archive at archivePath and returns a storage reading its
// layers from src. Cleanup closes src when it is an io.Closer.
func Open(archivePath string, src spans.Source, opts Options) (*Storage, error) {
	a, err := archive.ReadFile(archivePath)
	if err != nil {
		return nil, err
	}
	md, err := clip.NewClipArchiver().ExtractMetadata(archivePath)
	if err != nil {
		return nil, fmt.Errorf("%s: clip metadata: %w", archivePath, err)
	}
	return New(a, md, src, opts), nil
}

// New returns a storage for archive a, whose clip metadata (clip's decoding
// of the same file) is md, reading layers from src.
func New(a *archive.Archive, md *common.ClipArchiveMetadata, src spans.Source, opts Options) *Storage {
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 5 * time.Minute
	}
	e := spans.New(a, src, opts.Spans)
	e.Prepare() // the registry's connection and blob sizes before the first read
	r := ociclip.NewSpanReader(a, src, e)
	return &Storage{md: md, r: r, src: src, opts: opts}
}

// Reader returns the ociclip Reader the storage reads through.
func (s *Storage) Reader() *ociclip.Reader { return s.r }

// Stats returns the span engine's counters.
func (s *Storage) Stats() spans.Stats { return s.r.Engine().Stats() }

// ReadFile implements storage.ClipStorageInterface: it fills dest with the
// bytes of node's file from offset on. Bytes that do not match the index,
// and a source that fails after its retries, are an error (clip answers the
// read with EIO); the engine logs one line naming the layer and offset.
func (s *Storage) ReadFile(node *common.ClipNode, dest []byte, offset int64) (int, error) {
	if node == nil {
		return 0, errors.New("clipstorage: nil node")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReadTimeout)
	defer cancel()
	n, err := s.r.ReadNode(ctx, node, dest, offset)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Metadata implements storage.ClipStorageInterface.
func (s *Storage) Metadata() *common.ClipArchiveMetadata { return s.md }

// CachedLocally implements storage.ClipStorageInterface: Options.Local.
func (s *Storage) CachedLocally() bool { return s.opts.Local }

// Cleanup implements storage.ClipStorageInterface: it stops the span engine
// (dropping its memory cache and temporary files) and closes the source
// when it is an io.Closer. It is idempotent.
func (s *Storage) Cleanup() error {
	s.once.Do(func() {
		s.err = s.r.Close()
		if c, ok := s.src.(io.Closer); ok {
			s.err = errors.Join(s.err, c.Close())
		}
	})
	return s.err
}
