package ociclip

import (
	"runtime"
	"runtime/debug"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/layercache"
)

const (
	// ModulePath is ociclip's module path.
	ModulePath = "github.com/ociclip/ociclip"
	// ClipModulePath is the module path of beam-cloud/clip.
	ClipModulePath = "github.com/beam-cloud/clip"
	// ClipVersion is the clip version whose format and behaviour ociclip
	// targets (the one its compatibility tests run against). Version
	// reports the clip version actually linked when the build records it.
	ClipVersion = "v0.0.0-20260126181811-a2a14fb37f70"
)

// VersionInfo describes this build of ociclip and the formats it writes.
type VersionInfo struct {
	Module             string `json:"module"`             // ModulePath
	Version            string `json:"version"`            // module version; "(devel)" for a build from a checkout
	GoVersion          string `json:"goVersion"`          // Go toolchain that built the binary
	ClipModule         string `json:"clipModule"`         // ClipModulePath
	ClipVersion        string `json:"clipVersion"`        // clip version linked (from build info), else ClipVersion
	ClipFormatVersion  uint8  `json:"clipFormatVersion"`  // clip archive header format version written
	ExtensionVersion   uint32 `json:"extensionVersion"`   // ociclip extension section version written
	CacheFormatVersion uint32 `json:"cacheFormatVersion"` // layercache entry format version
}

// Version returns the version of ociclip, from the binary's build
// information where it has one, and the format versions it writes.
func Version() VersionInfo {
	v := VersionInfo{
		Module:             ModulePath,
		Version:            "(devel)",
		GoVersion:          runtime.Version(),
		ClipModule:         ClipModulePath,
		ClipVersion:        ClipVersion,
		ClipFormatVersion:  common.ClipFileFormatVersion,
		ExtensionVersion:   archive.ExtensionVersion,
		CacheFormatVersion: layercache.FormatVersion,
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for _, m := range mods {
		if m == nil {
			continue
		}
		if m.Replace != nil && m.Replace.Version != "" {
			m = &debug.Module{Path: m.Path, Version: m.Replace.Version}
		}
		switch {
		case m.Path == ModulePath && m.Version != "" && m.Version != "(devel)":
			v.Version = m.Version
		case m.Path == ClipModulePath && m.Version != "":
			v.ClipVersion = m.Version
		}
	}
	return v
}
