// Package tarzst writes pgxtask's release archives: the deterministic tar
// stream of internal/archive, compressed by libzstd at level 18.
//
// The encoder is the reference C library (DataDog/zstd, which bundles and
// compiles libzstd 1.5.7 through cgo), not the pure-Go encoder the rest of
// pgxtask decodes with: klauspost/compress's best level has no optimal
// parser, and its archives of the runtime's binaries come out about 16%
// larger than zstd -19's. Only packaging imports this package; the loader
// and the extractor decode with klauspost/compress and need no cgo.
//
// The bytes are a function of the entries, the options and the bundled
// libzstd version: one frame, compressed in one call (ZSTD_compress, one
// thread, the content size in the frame header), so neither the order of
// writes nor the machine's core count can change them. Building with the
// external_libzstd tag (a system libzstd) is refused at compile time, since a
// different library version may give different bytes.
package tarzst

import (
	"bytes"
	"fmt"
	"io"

	"github.com/DataDog/zstd"
	"github.com/pglite-oxide/pgxtask/internal/archive"
)

// Level is the one zstd level of every pgxtask archive. Changing it, or the
// libzstd version (the DataDog/zstd module version), changes every
// artifact's bytes.
const Level = 18

// Encoder names the compressor for manifests and provenance.
const Encoder = "libzstd 1.5.7 (github.com/DataDog/zstd v1.5.7) level 18"

// Write writes entries as archive.WriteTar does, compressed with libzstd at
// Level in a single frame. The same entries and options always give the same
// bytes. The tar stream is held in memory while it is compressed (the
// largest pgxtask archive expands to about 40 MB).
func Write(w io.Writer, entries []archive.Entry, opts archive.WriteOptions) (archive.Stats, error) {
	var tarBuf bytes.Buffer
	st, err := archive.WriteTar(&tarBuf, entries, opts)
	if err != nil {
		return st, err
	}
	out, err := Compress(tarBuf.Bytes())
	if err != nil {
		return st, err
	}
	n, err := w.Write(out)
	if err != nil {
		return st, err
	}
	st.CompressedBytes = int64(n)
	return st, nil
}

// Compress compresses raw into one zstd frame with the same fixed settings
// (for artifacts that are a single file rather than a tar, such as AOT
// modules).
func Compress(raw []byte) ([]byte, error) {
	out, err := zstd.CompressLevel(nil, raw, Level)
	if err != nil {
		return nil, fmt.Errorf("zstd level %d: %w", Level, err)
	}
	return out, nil
}
