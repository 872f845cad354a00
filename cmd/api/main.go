// Command api serves akvsync's CCKM-compatible REST API. It is thin: it
// validates requests, writes job and vault records to NATS, publishes
// sync-requested events, and asks the workers' inventory for keys and jobs.
//
// With --embedded it also runs an in-process NATS server (JetStream in
// --data-dir, listening nowhere unless --nats-listen is given) and one
// worker, so one process is a whole akvsync. --demo adds an in-process Azure
// Key Vault emulator with seeded vaults, registers them, prints how to call
// the API, and runs a first sync of every vault.
//
// Every flag has an AKVSYNC_* environment variable (flag name upper-cased,
// dashes as underscores); a flag given on the command line wins.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	err := run(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}
