// Command akvsync-bench measures akvsync as a user runs it: it builds the
// real binaries (api, worker, akv-emulator, nats-server), starts them as
// processes, drives them through the HTTP API and the emulator's admin API,
// and prints one row per figure with the baseline measured in the same run
// and the ratio against the goal of issue 8. See docs/benchmarks.md.
//
//	go run ./cmd/akvsync-bench -p2 -flat            # selected figures, full sizes
//	go run ./cmd/akvsync-bench -all -small          # every figure, small sizes (about two minutes)
//	go run ./cmd/akvsync-bench -p1 -p1.vaults 10 -json
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the selected figures and prints the report. It
// returns the process exit code: 0 when every figure ran (goals missed are
// reported, not errors), 1 when a figure could not run, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "akvsync-bench:", err)
		return 2
	}
	if o.help {
		return 0
	}
	e, err := newEnv(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "akvsync-bench:", err)
		return 1
	}
	rep := e.runFigures(ctx)
	e.close()
	table := stdout
	if o.json {
		table = stderr
	}
	rep.printTable(table)
	if o.json {
		if err := rep.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "akvsync-bench:", err)
			return 1
		}
	}
	if rep.failedFigures() > 0 {
		return 1
	}
	return 0
}
