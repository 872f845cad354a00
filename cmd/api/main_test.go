package main

import (
	"os"
	"testing"

	"github.com/akvsync/akvsync/internal/auth"
)

// TestMain makes the password hashes of the API processes these tests run
// in-process (the demo's bootstrap admin, each login) cheap: argon2id at
// its production cost (64 MiB, 3 passes) takes about a second under the
// race detector, and no test here is about that cost (internal/auth tests
// the defaults). Hashes carry their parameters, so verification follows.
func TestMain(m *testing.M) {
	auth.DefaultArgon2Params = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	os.Exit(m.Run())
}
