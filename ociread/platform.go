package ociread

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ParsePlatform parses "os/arch" or "os/arch/variant", e.g. "linux/amd64",
// "linux/arm64/v8", "linux/arm/v7". Parts are lowercased; the architecture
// aliases x86_64/x86-64 (amd64) and aarch64 (arm64) are accepted.
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("%w %q: want os/arch[/variant]", ErrInvalidPlatform, short(s))
	}
	for _, p := range parts {
		if p == "" || strings.TrimSpace(p) != p {
			return v1.Platform{}, fmt.Errorf("%w %q: empty or blank part, want os/arch[/variant]", ErrInvalidPlatform, short(s))
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: normArch(parts[1])}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// DefaultPlatform is the platform Resolve looks for when Select.Platform is
// nil: linux/runtime.GOARCH without a variant (which, for arm64, matches
// "" and "v8"; for arm, prefers v7; see Select).
func DefaultPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// FormatPlatform renders p as os/arch[/variant].
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func normArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// defaultVariant is the variant a descriptor without one is taken to have,
// and the highest variant chosen when the wanted platform has none.
func defaultVariant(arch string) string {
	switch arch {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	case "amd64":
		return "v1"
	}
	return ""
}

func normVariant(arch, variant string) string {
	if variant == "" {
		return defaultVariant(arch)
	}
	return variant
}

// variantNumber parses "vN" or "vN.M" into N*1000+M.
func variantNumber(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok || rest == "" {
		return 0, false
	}
	maj, min, hasMin := strings.Cut(rest, ".")
	n, err := strconv.Atoi(maj)
	if err != nil || n < 0 || n > 1000 {
		return 0, false
	}
	m := 0
	if hasMin {
		m, err = strconv.Atoi(min)
		if err != nil || m < 0 || m > 999 {
			return 0, false
		}
	}
	return n*1000 + m, true
}

// matchRank says how well have satisfies want; 0 means no match and higher
// is better. OS and architecture must be equal. With a wanted variant, the
// (normalized) variants must be equal. Without one, the architecture's
// default variant (or none) ranks best; for architectures with numbered
// variants (arm, arm64, amd64) a lower-numbered variant is acceptable and the
// highest such wins; for others, any variant is acceptable but ranks last.
func matchRank(want, have v1.Platform) int {
	if have.OS != want.OS || normArch(have.Architecture) != want.Architecture {
		return 0
	}
	arch := want.Architecture
	if want.Variant != "" {
		if normVariant(arch, have.Variant) == normVariant(arch, want.Variant) {
			return 3
		}
		return 0
	}
	def := defaultVariant(arch)
	hv := normVariant(arch, have.Variant)
	if hv == def {
		return 1 << 30
	}
	dn, ok := variantNumber(def)
	if !ok {
		return 1 // no known order: acceptable, after exact matches
	}
	hn, ok := variantNumber(hv)
	if !ok || hn > dn {
		return 0
	}
	return 2 + hn
}

// isUnknownPlatform reports the "unknown/unknown" platform buildx gives to
// attestation manifests.
func isUnknownPlatform(p *v1.Platform) bool {
	return p != nil && (p.OS == "unknown" || p.Architecture == "unknown")
}

// checkImagePlatform checks the platform of a single selected manifest's
// config against an explicitly requested one (asked nil: no check). A
// config that names no os or architecture cannot be checked and passes.
func checkImagePlatform(img *Image, asked *v1.Platform, want v1.Platform, where string) (*Image, error) {
	have := img.Config.Platform
	if asked == nil || have.OS == "" && have.Architecture == "" {
		return img, nil
	}
	if matchRank(want, have) == 0 {
		return nil, fmt.Errorf("%w: %s was asked for, but %s (manifest %s) is %s",
			ErrPlatformNotFound, FormatPlatform(want), where, img.ManifestDescriptor.Digest, FormatPlatform(have))
	}
	return img, nil
}
