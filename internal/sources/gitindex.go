package sources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// indexEntry is the part of a git index entry the reuse check needs.
type indexEntry struct {
	name      string
	mtimeSec  uint32
	mtimeNsec uint32
	mode      uint32
	size      uint32
	hash      [20]byte
}

var errIndexVersion = errors.New("unsupported git index version")

// readIndex parses a git index file of version 2 or 3 (what go-git and git
// write by default). It is a lean reader for the hot reuse path: go-git's
// decoder costs more than the whole stat walk on a tree the size of
// PostgreSQL's. Other versions return errIndexVersion.
func readIndex(path string) ([]indexEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 12 || !bytes.Equal(data[:4], []byte("DIRC")) {
		return nil, fmt.Errorf("%s: not a git index", path)
	}
	version := binary.BigEndian.Uint32(data[4:8])
	if version != 2 && version != 3 {
		return nil, errIndexVersion
	}
	count := binary.BigEndian.Uint32(data[8:12])
	entries := make([]indexEntry, 0, count)
	off := 12
	for i := uint32(0); i < count; i++ {
		if off+62 > len(data) {
			return nil, fmt.Errorf("%s: truncated at entry %d", path, i)
		}
		e := data[off:]
		var ie indexEntry
		ie.mtimeSec = binary.BigEndian.Uint32(e[8:12])
		ie.mtimeNsec = binary.BigEndian.Uint32(e[12:16])
		ie.mode = binary.BigEndian.Uint32(e[24:28])
		ie.size = binary.BigEndian.Uint32(e[36:40])
		copy(ie.hash[:], e[40:60])
		flags := binary.BigEndian.Uint16(e[60:62])
		fixed := 62
		if version == 3 && flags&0x4000 != 0 {
			fixed = 64
		}
		if off+fixed > len(data) {
			return nil, fmt.Errorf("%s: truncated at entry %d", path, i)
		}
		nameEnd := bytes.IndexByte(data[off+fixed:], 0)
		if nameEnd < 0 {
			return nil, fmt.Errorf("%s: unterminated name at entry %d", path, i)
		}
		ie.name = string(data[off+fixed : off+fixed+nameEnd])
		// Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
		n := fixed + nameEnd
		off += n + (8 - n%8)
		entries = append(entries, ie)
	}
	return entries, nil
}
