package archive

import (
	"bytes"
	"encoding/gob"
	"time"

	"github.com/beam-cloud/clip/pkg/common"
)

// decodeStorageInfo decodes clip's OCIStorageInfo from its gob encoding
// without letting the stream size a map. encoding/gob up to Go 1.26 makes a
// map with the length the stream claims before it reads a single entry
// (golang/go#79539): a 7 KB .clip file found by FuzzDecode claimed 14
// billion entries and took 23 GiB. gob only makes a map for a nil one, and
// skips the entries of a field its destination lacks one by one, so the
// section is decoded twice: first into storageShape, which has every field
// but the maps (that tells whether ImageMetadata is there and how many
// LayersData it has), then into dst with every map already made. Maps that
// stay empty are set back to nil, as a plain decode leaves them.
func decodeStorageInfo(b []byte, dst *common.OCIStorageInfo) error {
	var shape storageShape
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&shape); err != nil {
		return err
	}
	*dst = common.OCIStorageInfo{
		GzipIdxByLayer:          map[string]*common.GzipIndex{},
		ZstdIdxByLayer:          map[string]*common.ZstdIndex{},
		DecompressedHashByLayer: map[string]string{},
	}
	if shape.ImageMetadata != nil {
		im := &common.ImageMetadata{
			Labels:       map[string]string{},
			ExposedPorts: map[string]struct{}{},
			Volumes:      map[string]struct{}{},
			LayersData:   make([]common.LayerMetadata, len(shape.ImageMetadata.LayersData)),
		}
		for i := range im.LayersData {
			im.LayersData[i].Annotations = map[string]string{}
		}
		dst.ImageMetadata = im
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(dst); err != nil {
		return err
	}
	dst.GzipIdxByLayer = nilIfEmpty(dst.GzipIdxByLayer)
	dst.ZstdIdxByLayer = nilIfEmpty(dst.ZstdIdxByLayer)
	dst.DecompressedHashByLayer = nilIfEmpty(dst.DecompressedHashByLayer)
	if im := dst.ImageMetadata; im != nil {
		im.Labels = nilIfEmpty(im.Labels)
		im.ExposedPorts = nilIfEmpty(im.ExposedPorts)
		im.Volumes = nilIfEmpty(im.Volumes)
		if len(im.LayersData) == 0 {
			im.LayersData = nil
		}
		for i := range im.LayersData {
			im.LayersData[i].Annotations = nilIfEmpty(im.LayersData[i].Annotations)
		}
	}
	return nil
}

func nilIfEmpty[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	return m
}

// storageShape is common.OCIStorageInfo without its maps (gob matches
// fields by name).
type storageShape struct {
	RegistryURL   string
	Repository    string
	Reference     string
	Layers        []string
	ImageMetadata *imageShape
}

// imageShape is common.ImageMetadata without its maps.
type imageShape struct {
	Name          string
	Digest        string
	RepoTags      []string
	Created       time.Time
	DockerVersion string
	Architecture  string
	Os            string
	Variant       string
	Author        string
	Env           []string
	Cmd           []string
	Entrypoint    []string
	User          string
	WorkingDir    string
	StopSignal    string
	Layers        []string
	LayersData    []layerShape
}

// layerShape is common.LayerMetadata without its map.
type layerShape struct {
	MIMEType string
	Digest   string
	Size     int64
}
