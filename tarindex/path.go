package tarindex

import (
	"path"
	"strings"
)

// cleanAbs returns the clean absolute path of a tar entry name inside the
// image root ("./a/b/" -> "/a/b"; "./", "/", "." -> "/"; "/etc/x" is taken
// relative to the root; ".." stops at the root, so "../../etc/x" is
// "/etc/x", as containerd's and umoci's appliers place it). ok is false
// when the name contains NUL.
func cleanAbs(name string) (p string, ok bool) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", false
	}
	rel := name
	lead := false // rel keeps the original leading "/"
	switch {
	case strings.HasPrefix(rel, "./"):
		rel = rel[2:]
	case strings.HasPrefix(rel, "/"):
		rel = rel[1:]
		lead = true
	}
	trail := strings.HasSuffix(rel, "/")
	if trail {
		rel = rel[:len(rel)-1]
	}
	if rel == "" {
		return "/", true
	}
	if isCleanRel(rel) {
		if lead && !trail {
			return name, true // already "/a/b"
		}
		return "/" + rel, true
	}
	// Slow path: path.Clean of an absolute path drops ".." at the root.
	return path.Clean("/" + name), true
}

// isCleanRel reports whether s is a non-empty relative path without empty,
// "." or ".." components.
func isCleanRel(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			continue
		}
		switch s[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}
