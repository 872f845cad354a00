//go:build !linux

package store

import bolt "go.etcd.io/bbolt"

// releaseResident is a no-op where the store does not release the pages
// of its memory map (see resident_linux.go).
func releaseResident(*bolt.DB, *bolt.Tx) error { return nil }

// residentFileBytes reports nothing resident where the store does not
// release its map.
func residentFileBytes() (int64, error) { return 0, nil }
