package control

import "github.com/akvsync/akvsync/pkg/events"

// normalizeID is events.NormalizeID: a malformed id names nothing, so
// callers answer "not found" for it.
func normalizeID(s string) (string, bool) { return events.NormalizeID(s) }

// IsID reports whether s has the shape of a job or vault id (a UUID).
func IsID(s string) bool {
	_, ok := normalizeID(s)
	return ok
}
