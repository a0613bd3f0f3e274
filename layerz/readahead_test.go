package layerz

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadAheadPassesBytesAndErrorsInOrder(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	rand.New(rand.NewSource(1)).Read(data)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		r    io.Reader
		err  error
	}{
		{"plain", bytes.NewReader(data), nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data[:200000])), nil},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(data)), nil},
		{"error after data", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra := NewReadAhead(tc.r)
			defer ra.Stop()
			got, err := io.ReadAll(iotest.HalfReader(ra))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			want := data
			if tc.name == "one byte at a time" {
				want = data[:200000]
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d (or different content)", len(got), len(want))
			}
			// The error stays.
			if n, err := ra.Read(make([]byte, 10)); n != 0 || (err != io.EOF && !errors.Is(err, tc.err)) {
				t.Fatalf("read after the end: %d, %v", n, err)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

type liarReader struct{}

func (liarReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestReadAheadBrokenReaders(t *testing.T) {
	for _, tc := range []struct {
		r   io.Reader
		err error
	}{{zeroReader{}, io.ErrNoProgress}, {liarReader{}, io.ErrShortBuffer}} {
		ra := NewReadAhead(tc.r)
		_, err := io.ReadAll(ra)
		ra.Stop()
		if !errors.Is(err, tc.err) {
			t.Errorf("%T: error %v, want %v", tc.r, err, tc.err)
		}
	}
}

// blockingReader blocks until release is closed.
type blockingReader struct{ entered, release chan struct{} }

func (b blockingReader) Read(p []byte) (int, error) {
	close(b.entered)
	<-b.release
	return 0, io.EOF
}

func TestReadAheadStopWaitsForTheReader(t *testing.T) {
	// stop must not return while the goroutine is inside the source's Read:
	// Index promises it stopped reading r when it returns.
	br := blockingReader{entered: make(chan struct{}), release: make(chan struct{})}
	ra := NewReadAhead(br)
	<-br.entered
	stopped := make(chan struct{})
	go func() { ra.Stop(); close(stopped) }()
	time.Sleep(20 * time.Millisecond) // give a wrong stop the time to return
	select {
	case <-stopped:
		t.Fatal("stop returned while the reader was still being read")
	default:
	}
	close(br.release)
	<-stopped
	// Stopping a read-ahead whose buffers are all full (nobody reads) returns too.
	ra = NewReadAhead(bytes.NewReader(make([]byte, 4<<20)))
	ra.Stop()
}
