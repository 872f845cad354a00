// Package app holds what akvsync's binaries share beyond flag parsing: the
// embedded NATS server, logging setup, and loading Azure connections from
// a file or an emulator manifest.
package app
