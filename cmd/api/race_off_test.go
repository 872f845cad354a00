//go:build !race

package main

// raceEnabled: the race detector slows a sync about tenfold.
const raceEnabled = false
