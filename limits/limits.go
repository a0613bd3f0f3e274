// Package limits holds the bounds ociclip puts on what a hostile or broken
// image can make it do: one Limits type with every bound and its default,
// and one error type, *Error, that every package returns when a bound is
// exceeded (errors.Is(err, ErrLimit); errors.As(err, &*Error) names it).
//
// ociread applies MaxJSONBytes and MaxIndexDepth, tarindex MaxEntries,
// MaxPathLen and MaxUncompressedBytes, and the overlay merge (archive)
// MaxNodes and MaxPathLen.
package limits

import (
	"errors"
	"fmt"
)

// Defaults of the Limits fields.
const (
	DefaultMaxJSONBytes         = 8 << 20
	DefaultMaxIndexDepth        = 8
	DefaultMaxEntries           = 1_000_000
	DefaultMaxPathLen           = 4096
	DefaultMaxUncompressedBytes = 1 << 40
	// DefaultMaxNodes is the most MaxNodes can be by default;
	// CreateFromOCILayout derives a lower default from the image (twice
	// the tar entries of all layers plus 4096).
	DefaultMaxNodes = 10_000_000
)

// Limits bound resource use on hostile input. Zero or negative fields mean
// their defaults.
type Limits struct {
	// MaxJSONBytes caps oci-layout, index.json, every manifest, config and
	// nested index, and a docker-archive's or dir:'s manifest.json.
	MaxJSONBytes int64
	// MaxIndexDepth caps how many image indexes may be nested below
	// index.json (an index referenced from index.json is at depth 1).
	MaxIndexDepth int
	// MaxEntries caps the tar entries (headers) of one layer; each costs
	// about 750 bytes of peak memory.
	MaxEntries int
	// MaxPathLen caps the bytes of an entry name or link target, and of a
	// node's path after symlinks in its parent path are resolved.
	MaxPathLen int
	// MaxUncompressedBytes caps the uncompressed stream of one layer
	// (decompression bombs).
	MaxUncompressedBytes int64
	// MaxNodes caps the nodes of the merged tree, synthesized parent
	// directories included, so that entries deep below missing parents
	// cannot make the tree much larger than the input.
	MaxNodes int
}

// Normalized returns l with the defaults filled in. MaxNodes stays zero
// when unset: its default depends on the image (see DefaultMaxNodes).
func (l Limits) Normalized() Limits {
	if l.MaxJSONBytes <= 0 {
		l.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if l.MaxIndexDepth <= 0 {
		l.MaxIndexDepth = DefaultMaxIndexDepth
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = DefaultMaxPathLen
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if l.MaxNodes < 0 {
		l.MaxNodes = 0
	}
	return l
}

// ErrLimit is what every *Error matches with errors.Is.
var ErrLimit = errors.New("limit exceeded")

// Error reports a bound exceeded: Name is the Limits field ("MaxEntries"),
// Limit its value, Detail what exceeded it.
type Error struct {
	Name   string
	Limit  int64
	Detail string
}

// New returns an *Error.
func New(name string, limit int64, detail string) error {
	return &Error{Name: name, Limit: limit, Detail: detail}
}

// Error returns "limit exceeded: NAME LIMIT: DETAIL".
func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s %d: %s", ErrLimit, e.Name, e.Limit, e.Detail)
}

// Is reports whether target is ErrLimit.
func (e *Error) Is(target error) bool { return target == ErrLimit }
