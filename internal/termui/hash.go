package termui

// ShortHash is the first 12 characters of a commit id or sha256, as
// listings show them; a shorter string is returned whole.
func ShortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
