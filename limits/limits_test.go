package limits

import (
	"errors"
	"fmt"
	"testing"
)

func TestError(t *testing.T) {
	err := fmt.Errorf("layer 2/3: %w", New("MaxEntries", 10, "too many tar entries"))
	if !errors.Is(err, ErrLimit) {
		t.Fatal("errors.Is(err, ErrLimit) is false")
	}
	var le *Error
	if !errors.As(err, &le) || le.Name != "MaxEntries" || le.Limit != 10 {
		t.Fatalf("errors.As: %+v", le)
	}
	if got, want := err.Error(), "layer 2/3: limit exceeded: MaxEntries 10: too many tar entries"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestNormalized(t *testing.T) {
	n := Limits{MaxEntries: -1, MaxPathLen: 7, MaxNodes: -5}.Normalized()
	want := Limits{MaxJSONBytes: DefaultMaxJSONBytes, MaxIndexDepth: DefaultMaxIndexDepth, MaxEntries: DefaultMaxEntries,
		MaxPathLen: 7, MaxUncompressedBytes: DefaultMaxUncompressedBytes}
	if n != want {
		t.Errorf("Normalized() = %+v, want %+v", n, want)
	}
	if n.Normalized() != n {
		t.Error("Normalized is not idempotent")
	}
}
