package wasm

// A tiny encoder for hand-made test binaries: each test states exactly the
// bytes it feeds the parser.

func uleb(v uint64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

func str(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func vec(items ...[]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func section(id byte, body []byte) []byte {
	return cat([]byte{id}, uleb(uint64(len(body))), body)
}

func custom(name string, body []byte) []byte { return section(0, cat(str(name), body)) }

func sub(typ byte, body []byte) []byte { return cat([]byte{typ}, uleb(uint64(len(body))), body) }

func module(sections ...[]byte) []byte {
	return cat([]byte("\x00asm\x01\x00\x00\x00"), cat(sections...))
}
