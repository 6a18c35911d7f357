package archive

import (
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// zstdMaxWindow bounds the decoder's window (and so its memory); the writer
// of this package stays far below it.
const zstdMaxWindow = 128 << 20

// Zstd is the Decompressor of zstd streams (klauspost/compress, one
// goroutine, bounded window).
func Zstd(raw io.Reader) (io.Reader, io.Closer, error) {
	d, err := zstd.NewReader(raw,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, err
	}
	return d, closerFunc(d.Close), nil
}

// Gzip is the Decompressor of gzip streams.
func Gzip(raw io.Reader) (io.Reader, io.Closer, error) {
	z, err := gzip.NewReader(raw)
	if err != nil {
		return nil, nil, err
	}
	return z, z, nil
}

// Bzip2 is the Decompressor of bzip2 streams.
func Bzip2(raw io.Reader) (io.Reader, io.Closer, error) {
	return bzip2.NewReader(raw), nil, nil
}

type closerFunc func()

// Close calls f.
func (f closerFunc) Close() error { f(); return nil }

// DecompressorFor picks the Decompressor from a file name: .tar.zst/.tzst,
// .tar.gz/.tgz, .tar.bz2/.tbz2, or nil for a plain .tar.
func DecompressorFor(name string) (Decompressor, error) {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".tar.zst"), strings.HasSuffix(lower, ".tzst"):
		return Zstd, nil
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		return Gzip, nil
	case strings.HasSuffix(lower, ".tar.bz2"), strings.HasSuffix(lower, ".tbz2"):
		return Bzip2, nil
	case strings.HasSuffix(lower, ".tar"):
		return nil, nil
	}
	return nil, fmt.Errorf("%s: unknown archive type (want .tar, .tar.zst, .tar.gz or .tar.bz2)", name)
}

// ExtractZstd is Extract of a .tar.zst stream; opts.SHA256 is the digest of
// the compressed bytes.
func ExtractZstd(r io.Reader, dest string, opts ExtractOptions) error {
	opts.Decompress = Zstd
	return Extract(r, dest, opts)
}

// ExtractFile extracts the archive file at path into dest, choosing the
// decompressor from the file name unless opts.Decompress is set. The rules of
// Extract apply: dest must be missing or empty and is left empty on error.
func ExtractFile(path, dest string, opts ExtractOptions) error {
	if opts.Decompress == nil {
		d, err := DecompressorFor(path)
		if err != nil {
			return err
		}
		opts.Decompress = d
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	defer f.Close()
	if err := Extract(f, dest, opts); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
