package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Figure names, in the order they run. Each has a flag of the same name.
const (
	figP1      = "p1"
	figP2      = "p2"
	figP4      = "p4"
	figFlat    = "flat"
	figP5      = "p5"
	figStorage = "storage"
	figP6      = "p6"
	figFanout  = "fanout"
	figFresh   = "fresh"
)

// figureOrder is the run order: figures that share the big embedded
// inventory (flat, p5, storage, p6) run one after the other, and storage,
// which stops that inventory's process to read its bbolt file, runs after
// p5. fresh runs last: its 1-minute schedule takes minutes.
var figureOrder = []string{figP1, figP2, figP4, figFlat, figP5, figStorage, figP6, figFanout, figFresh}

// Default sizes: the figures of issue 8.
const (
	defaultP1Vaults   = 100
	defaultP1Keys     = 1000
	defaultP1Latency  = 20 * time.Millisecond
	defaultP2Vaults   = 100
	defaultP2Keys     = 1000
	defaultBigVaults  = 1000
	defaultBigKeys    = 1000
	defaultP4Vaults   = 64
	defaultP4Keys     = 100
	defaultP4Latency  = time.Second
	defaultP4Workers  = 4
	defaultP4LVaults  = 100
	defaultP4LKeys    = 1000
	defaultP4LLatency = 20 * time.Millisecond
	defaultP5Repeat   = 20
	defaultP6Vaults   = 1000
	defaultP6Keys     = 1000
	defaultFanVaults  = 100000
	defaultFanKeys    = 10
	defaultFrVaults   = 100
	defaultFrKeys     = 1000
	defaultFrLatency  = 20 * time.Millisecond
	defaultFrChanges  = 40
	defaultFrSpan     = 3 * time.Minute
	defaultFrPoll     = 20 * time.Millisecond
	defaultFrVisible  = 3 * time.Minute
	defaultTimeout    = 3 * time.Hour
	// AzureSubscriptionRate is Azure Key Vault's request limit per
	// subscription (and the emulator's default: 5 × 4,000 per 10 s).
	AzureSubscriptionRate = 2000.0
)

// smallSizes is what -small sets for every size flag not given: each
// figure then runs in seconds to a minute.
var smallSizes = map[string]string{
	"p1.vaults": "4", "p1.keys": "250",
	"p2.vaults": "4", "p2.keys": "250",
	"big.vaults": "8", "big.keys": "250",
	"p4.vaults": "8", "p4.keys": "25", "p4.latency": "100ms", "p4.workers": "2", "p4.vault-parallelism": "2",
	"p4.limits-vaults": "4", "p4.limits-keys": "250",
	"p5.repeat": "5",
	"p6.vaults": "8", "p6.keys": "250",
	"fanout.vaults": "40", "fanout.keys": "5", "fanout.host-routing": "false",
	"fresh.vaults": "4", "fresh.keys": "250", "fresh.changes": "8", "fresh.schedule-span": "20s",
}

// options are the parsed flags.
type options struct {
	figures map[string]bool
	small   bool
	json    bool
	help    bool
	bin     string
	workDir string
	keep    bool
	timeout time.Duration
	verbose bool

	p1Vaults, p1Keys int
	p1Latency        time.Duration
	p2Vaults, p2Keys int
	bigVaults        int
	bigKeys          int
	p4Vaults, p4Keys int
	p4Latency        time.Duration
	p4Workers        int
	p4VaultPar       int
	p4LVaults        int
	p4LKeys          int
	p4LLatency       time.Duration
	p5Repeat         int
	p6Vaults, p6Keys int
	p6Embedded       bool
	fanVaults        int
	fanKeys          int
	fanHostRouting   bool
	fanWorkers       int
	frVaults         int
	frKeys           int
	frLatency        time.Duration
	frChanges        int
	frSchedule       bool
	frSpan           time.Duration
	frPoll           time.Duration
	frVisible        time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{figures: map[string]bool{}}
	fs := flag.NewFlagSet("akvsync-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sel := map[string]*bool{}
	for _, f := range []struct{ name, usage string }{
		{figP1, "P1 real limits: sync-all at Azure's default limits and 20 ms latency; wall time ÷ (calls ÷ 2,000/s), 429s, calls"},
		{figP2, "P2 CPU efficiency: zero-latency embedded keys/s ÷ an in-process azkeys→bbolt loop"},
		{figP4, "P4 horizontal: N worker processes ÷ 1 on nats-server (latency-bound), and 429s of N workers on one subscription"},
		{figFlat, "flat cost per key: keys/s at -big.* ÷ keys/s at -p2.*"},
		{figP5, "P5 queries: p50 of filtered key lists through the HTTP API over the -big.* inventory, and a limit=-1 export"},
		{figStorage, "storage: bbolt bytes in use per key ÷ the key's CCKM JSON size (-big.* inventory)"},
		{figP6, "P6 memory: RSS of a worker process syncing -p6.* keys, of the embedded process, and of the API serving the export"},
		{figFanout, "fan-out: sync-all of -fanout.* vaults; job GET and jobs list p50 while it runs"},
		{figFresh, "freshness: key change in the emulator → visible through the API, with Event Grid push and with a sync scheduled every minute; Azure calls per day at 100 × 1,000 keys, 1 % daily churn"},
	} {
		sel[f.name] = fs.Bool(f.name, false, f.usage)
	}
	all := fs.Bool("all", false, "run every figure")
	fs.BoolVar(&o.small, "small", false, "small sizes for every size flag not given (a quick check that each figure works)")
	fs.BoolVar(&o.json, "json", false, "write the results as JSON to stdout (the table goes to stderr)")
	fs.StringVar(&o.bin, "bin", "", "directory of prebuilt binaries (api, worker, akv-emulator, nats-server); built into a temporary directory when empty")
	fs.StringVar(&o.workDir, "work-dir", "", "directory for data and logs (default: a temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (data, logs) at exit")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "give up a figure's sync after this long")
	fs.BoolVar(&o.verbose, "v", false, "also log every process started, with its command line")

	fs.IntVar(&o.p1Vaults, "p1.vaults", defaultP1Vaults, "P1: vaults (one subscription)")
	fs.IntVar(&o.p1Keys, "p1.keys", defaultP1Keys, "P1: keys per vault")
	fs.DurationVar(&o.p1Latency, "p1.latency", defaultP1Latency, "P1: emulator latency per request")
	fs.IntVar(&o.p2Vaults, "p2.vaults", defaultP2Vaults, "P2 and flat's smaller run: vaults")
	fs.IntVar(&o.p2Keys, "p2.keys", defaultP2Keys, "P2 and flat's smaller run: keys per vault")
	fs.IntVar(&o.bigVaults, "big.vaults", defaultBigVaults, "flat's larger run, P5 and storage: vaults")
	fs.IntVar(&o.bigKeys, "big.keys", defaultBigKeys, "flat's larger run, P5 and storage: keys per vault")
	fs.IntVar(&o.p4Vaults, "p4.vaults", defaultP4Vaults, "P4: vaults of the latency-bound workload")
	fs.IntVar(&o.p4Keys, "p4.keys", defaultP4Keys, "P4: keys per vault of the latency-bound workload")
	fs.DurationVar(&o.p4Latency, "p4.latency", defaultP4Latency, "P4: emulator latency of the latency-bound workload")
	fs.IntVar(&o.p4Workers, "p4.workers", defaultP4Workers, "P4: worker processes compared with one")
	fs.IntVar(&o.p4VaultPar, "p4.vault-parallelism", 0, "P4: --vault-parallelism of every worker (0: the worker's default); small values make a small workload scale")
	fs.IntVar(&o.p4LVaults, "p4.limits-vaults", defaultP4LVaults, "P4 at Azure's limits (one subscription): vaults")
	fs.IntVar(&o.p4LKeys, "p4.limits-keys", defaultP4LKeys, "P4 at Azure's limits: keys per vault")
	fs.DurationVar(&o.p4LLatency, "p4.limits-latency", defaultP4LLatency, "P4 at Azure's limits: emulator latency")
	fs.IntVar(&o.p5Repeat, "p5.repeat", defaultP5Repeat, "P5: requests per query (the p50 is over these)")
	fs.IntVar(&o.p6Vaults, "p6.vaults", defaultP6Vaults, "P6: vaults")
	fs.IntVar(&o.p6Keys, "p6.keys", defaultP6Keys, "P6: keys per vault")
	fs.BoolVar(&o.p6Embedded, "p6.embedded", true, "P6: also report the embedded process's RSS (syncs the same inventory embedded first; false measures the worker and the API alone)")
	fs.IntVar(&o.fanVaults, "fanout.vaults", defaultFanVaults, "fan-out: vaults")
	fs.IntVar(&o.fanKeys, "fanout.keys", defaultFanKeys, "fan-out: keys per vault")
	fs.BoolVar(&o.fanHostRouting, "fanout.host-routing", true, "fan-out: emulator in host-routing mode, vaults registered as https://<vault>.vault.localhost:PORT")
	fs.IntVar(&o.fanWorkers, "fanout.workers", 0, "fan-out: worker processes beside the embedded one (they join through --nats-listen)")
	fs.IntVar(&o.frVaults, "fresh.vaults", defaultFrVaults, "freshness: vaults (one subscription, Azure's limits)")
	fs.IntVar(&o.frKeys, "fresh.keys", defaultFrKeys, "freshness: keys per vault")
	fs.DurationVar(&o.frLatency, "fresh.latency", defaultFrLatency, "freshness: emulator latency per request")
	fs.IntVar(&o.frChanges, "fresh.changes", defaultFrChanges, "freshness: key changes (creates and rotations) sampled in each run")
	fs.BoolVar(&o.frSchedule, "fresh.schedule", true, "freshness: also run the changes against a sync scheduled every minute (takes -fresh.schedule-span plus up to two minutes)")
	fs.DurationVar(&o.frSpan, "fresh.schedule-span", defaultFrSpan, "freshness: the schedule run's changes are spread evenly over this long")
	fs.DurationVar(&o.frPoll, "fresh.poll", defaultFrPoll, "freshness: keys list poll interval of the push run (the schedule run polls every "+freshSchedulePoll.String()+")")
	fs.DurationVar(&o.frVisible, "fresh.visible-timeout", defaultFrVisible, "freshness: a change not visible through the API after this long fails the figure")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.help = true
			return o, nil
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.small {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, v := range smallSizes {
			if !given[name] {
				if err := fs.Set(name, v); err != nil {
					return o, err
				}
			}
		}
	}
	for name, on := range sel {
		if *on || *all {
			o.figures[name] = true
		}
	}
	if len(o.figures) == 0 {
		return o, fmt.Errorf("choose figures: -all or any of -%s", strings.Join(figureOrder, ", -"))
	}
	return o, o.validate()
}

func (o options) validate() error {
	for name, v := range map[string]int{
		"p1.vaults": o.p1Vaults, "p1.keys": o.p1Keys, "p2.vaults": o.p2Vaults, "p2.keys": o.p2Keys,
		"big.vaults": o.bigVaults, "big.keys": o.bigKeys, "p4.vaults": o.p4Vaults, "p4.keys": o.p4Keys,
		"p4.workers": o.p4Workers, "p4.limits-vaults": o.p4LVaults, "p4.limits-keys": o.p4LKeys,
		"p5.repeat": o.p5Repeat, "p6.vaults": o.p6Vaults, "p6.keys": o.p6Keys,
		"fanout.vaults": o.fanVaults, "fanout.keys": o.fanKeys,
		"fresh.vaults": o.frVaults, "fresh.keys": o.frKeys, "fresh.changes": o.frChanges,
	} {
		if v < 1 {
			return fmt.Errorf("-%s must be at least 1", name)
		}
	}
	if o.fanWorkers < 0 || o.p4VaultPar < 0 || o.timeout <= 0 || o.p1Latency < 0 || o.p4Latency < 0 || o.p4LLatency < 0 || o.frLatency < 0 {
		return errors.New("-fanout.workers, -timeout and latencies must not be negative")
	}
	if o.frPoll <= 0 || o.frVisible <= 0 || o.frSpan <= 0 {
		return errors.New("-fresh.poll, -fresh.visible-timeout and -fresh.schedule-span must be positive")
	}
	return nil
}
