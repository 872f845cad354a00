//go:build !linux

package store

import bolt "go.etcd.io/bbolt"

// releaseResident is a no-op where the store does not release the pages
// of its memory map (see resident_linux.go).
func releaseResident(*bolt.DB) error { return nil }
