package control

import "strings"

// normalizeID lower-cases s and reports whether it has the shape of a UUID
// (8-4-4-4-12 hex digits), the form of job and vault ids. A malformed id
// names nothing, so callers answer "not found" for it.
func normalizeID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", false
			}
		}
	}
	return s, true
}

// IsID reports whether s has the shape of a job or vault id (a UUID).
func IsID(s string) bool {
	_, ok := normalizeID(s)
	return ok
}
