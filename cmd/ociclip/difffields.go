package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// fieldDiffs compares x and y, values of the same type, field by field: it
// walks exported struct fields (into structs and pointers to structs) and
// calls add with the field's Go path ("ImageMetadata.Created",
// "Attr.Ino") and both values rendered, for every leaf that differs. Paths
// in skip, or below them, are compared elsewhere and passed over. Leaves
// are compared by their JSON encoding (maps in key order), so a field clip
// adds in a later version is compared without a change here.
func fieldDiffs(x, y any, skip map[string]bool, add func(path, a, b string)) {
	walkFields(reflect.ValueOf(x), reflect.ValueOf(y), "", skip, add)
}

func walkFields(x, y reflect.Value, path string, skip map[string]bool, add func(path, a, b string)) {
	if skip[path] {
		return
	}
	if x.Kind() == reflect.Pointer && y.Kind() == reflect.Pointer && x.Type().Elem().Kind() == reflect.Struct {
		switch {
		case x.IsNil() && y.IsNil():
			return
		case !x.IsNil() && !y.IsNil():
			walkFields(x.Elem(), y.Elem(), path, skip, add)
			return
		}
	}
	if x.Kind() == reflect.Struct && walkable(x.Type()) {
		for i := 0; i < x.NumField(); i++ {
			f := x.Type().Field(i)
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			walkFields(x.Field(i), y.Field(i), p, skip, add)
		}
		return
	}
	a, b := renderField(x), renderField(y)
	if a != b {
		add(path, abbreviate(a), abbreviate(b))
	}
}

// walkable reports a struct whose fields are all exported (time.Time, with
// unexported fields, is a leaf).
func walkable(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if !t.Field(i).IsExported() {
			return false
		}
	}
	return true
}

// renderField renders a leaf: strings and numbers as they are, times in
// RFC 3339, nil pointers as "", anything else as JSON.
func renderField(v reflect.Value) string {
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return ""
	}
	switch x := v.Interface().(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprintf("%#v", v.Interface())
	}
	return string(b)
}

// maxShown is the longest value diff prints in full.
const maxShown = 100

// abbreviate shortens a long rendered value to its start, its length and
// its sha256 (two long values that differ late still look different).
func abbreviate(s string) string {
	if len(s) <= maxShown {
		return s
	}
	head := s[:60]
	for !utf8.ValidString(head) {
		head = head[:len(head)-1]
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%s… (%d bytes, sha256:%s)", head, len(s), hex.EncodeToString(sum[:6]))
}

// skipSet builds the skip set of fieldDiffs.
func skipSet(paths ...string) map[string]bool {
	m := make(map[string]bool, len(paths))
	for _, p := range paths {
		m[p] = true
	}
	return m
}
