//go:build !unix

package testbin

// lock is a no-op where flock is missing: concurrent test processes may
// then build at the same time (go build writes each binary whole).
func lock(string) (func(), error) { return func() {}, nil }
