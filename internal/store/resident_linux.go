package store

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// releaseResident drops the pages of the bbolt file's memory map from the
// process's resident set (madvise MADV_DONTNEED). The map is a read-only
// shared file mapping, so nothing is lost: the pages stay in the kernel's
// page cache, and the next read of one maps it again (a minor fault). It
// runs inside tx, an open transaction: the map cannot move while it runs
// (a read transaction holds bbolt's mmap lock, and only the writer's own
// commit remaps), and tx.Size() is within it.
func releaseResident(db *bolt.DB, tx *bolt.Tx) error {
	size := tx.Size()
	if size <= 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, db.Info().Data, uintptr(size), syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

// residentFileBytes is the process's resident memory backed by files or
// shared memory: the third field of /proc/self/statm, in pages.
func residentFileBytes() (int64, error) {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(raw)
	if len(f) < 3 {
		return 0, strconv.ErrSyntax
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}
