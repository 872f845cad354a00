//go:build race

package testbin

// raceEnabled: this process runs under the race detector, so the binaries
// are built with -race too.
const raceEnabled = true
