package ociclip

import "github.com/beam-cloud/clip/pkg/clip"

// Sources of a layer's index, in Progress.Source.
const (
	SourceLocalLayout = "local-layout" // the layer's blob was read from the local image
	SourceIndexCache  = "index-cache"  // the layer's index came from the layer cache
)

// Clip returns p as clip a2a14fb's progress type: its first six fields. The
// byte-level fields, which that clip lacks, are dropped.
func (p Progress) Clip() clip.OCIIndexProgress {
	return clip.OCIIndexProgress{
		LayerIndex: p.LayerIndex, TotalLayers: p.TotalLayers, LayerDigest: p.LayerDigest,
		Stage: p.Stage, FilesIndexed: p.FilesIndexed, Message: p.Message,
	}
}
