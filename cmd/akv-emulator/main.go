// Command akv-emulator runs an Azure Key Vault (keys) + Entra ID token emulator with
// many seeded vaults, each on its own HTTPS listener, for development, demos, tests
// and benchmarks. See docs/emulator.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

// options are the command-line flags.
type options struct {
	spec           string
	manifest       string
	vaults         int
	managedHSMs    int
	hsmPrefix      string
	resourceGroup  string
	keysPerVault   int
	seed           int64
	subscriptions  int
	versionsPerKey int
	vaultPrefix    string
	listenHost     string
	adminListen    string
	noAdmin        bool
	dataDir        string
	caFile         string
	tokenLifetime  time.Duration
	hostRouting    bool
	hostOnly       bool
	irregularPages bool
	noThrottle     bool
	eventScale     float64
	tenantID       string
	clientID       string
	clientSecret   string
	logLevel       string
	logFormat      string
}

func parseFlags(args []string, stderr io.Writer) (options, map[string]bool, error) {
	var o options
	fs := flag.NewFlagSet("akv-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.spec, "spec", "", "JSON or YAML spec file (flags given explicitly override it)")
	fs.StringVar(&o.manifest, "manifest", "", "write the manifest JSON (tenant, client, secret, CA file, admin URL, vaults) to this path")
	fs.IntVar(&o.vaults, "vaults", 0, "number of generated vaults")
	fs.IntVar(&o.managedHSMs, "managed-hsms", 0, "number of generated managed HSM pools (<hsm-prefix>-0001…, HSM key types only)")
	fs.StringVar(&o.hsmPrefix, "hsm-prefix", akvemu.DefaultHSMPrefix, "prefix of generated managed HSM pool names")
	fs.StringVar(&o.resourceGroup, "resource-group", akvemu.DefaultResourceGroup, "Azure Resource Manager resource group of vaults and pools created without one")
	fs.IntVar(&o.keysPerVault, "keys-per-vault", akvemu.DefaultKeysPerVault, "keys per generated vault or pool")
	fs.Int64Var(&o.seed, "seed", 0, "seed for deterministic generation")
	fs.IntVar(&o.subscriptions, "subscriptions", akvemu.DefaultSubscriptions, "subscriptions the generated vaults are spread over")
	fs.IntVar(&o.versionsPerKey, "versions-per-key", akvemu.DefaultVersionsPerKey, "largest number of versions per generated key")
	fs.StringVar(&o.vaultPrefix, "vault-prefix", akvemu.DefaultVaultPrefix, "prefix of generated vault names")
	fs.StringVar(&o.listenHost, "listen-host", akvemu.DefaultListenHost, "IP address the HTTPS listeners bind to")
	fs.StringVar(&o.adminListen, "admin-listen", akvemu.DefaultAdminListen, "admin API address (plain HTTP, loopback only)")
	fs.BoolVar(&o.noAdmin, "no-admin", false, "disable the admin API")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for the CA certificate (default: a temporary directory removed at exit)")
	fs.StringVar(&o.caFile, "ca-file", "", "path of the CA certificate PEM (default: DATA-DIR/ca.pem)")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", akvemu.DefaultTokenLifetime, "lifetime of issued access tokens")
	fs.BoolVar(&o.hostRouting, "host-routing", false, "also serve vaults as <vault>.vault.localhost:PORT on one listener")
	fs.BoolVar(&o.hostOnly, "host-routing-only", false, "serve vaults only as <vault>.vault.localhost:PORT on one listener, no listener per vault (implies --host-routing; for more than ~9,000 vaults)")
	fs.BoolVar(&o.irregularPages, "irregular-pages", false, "irregular list pages (varying sizes, empty pages) on every vault")
	fs.BoolVar(&o.noThrottle, "no-throttle", false, "disable the default per-vault and per-subscription token buckets")
	fs.Float64Var(&o.eventScale, "event-retry-scale", 1, "multiply Event Grid's retry delays and event time to live (0.001: 10 s becomes 10 ms); event subscriptions come from the spec file or the admin API")
	fs.StringVar(&o.tenantID, "tenant-id", "", "tenant id (default: derived from the seed)")
	fs.StringVar(&o.clientID, "client-id", "", "client id of the default principal (default: derived from the seed)")
	fs.StringVar(&o.clientSecret, "client-secret", "", "client secret of the default principal (default: random)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "json", "log format: json or console")
	if err := fs.Parse(args); err != nil {
		return o, nil, err
	}
	if fs.NArg() > 0 {
		return o, nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return o, set, nil
}

// buildConfig merges the spec file (if any) with the flags given explicitly.
func buildConfig(o options, set map[string]bool, logger zerolog.Logger) (akvemu.Config, error) {
	var cfg akvemu.Config
	if o.spec != "" {
		var err error
		if cfg, err = akvemu.LoadSpecFile(o.spec); err != nil {
			return cfg, err
		}
	}
	apply := func(name string, fn func()) {
		if set[name] || o.spec == "" {
			fn()
		}
	}
	apply("vaults", func() { cfg.Seed.Vaults = o.vaults })
	apply("managed-hsms", func() { cfg.Seed.ManagedHSMs = o.managedHSMs })
	apply("hsm-prefix", func() { cfg.Seed.HSMPrefix = o.hsmPrefix })
	apply("resource-group", func() { cfg.ResourceGroup = o.resourceGroup })
	apply("keys-per-vault", func() { cfg.Seed.KeysPerVault = o.keysPerVault })
	apply("seed", func() { cfg.Seed.Seed = o.seed })
	apply("subscriptions", func() { cfg.Seed.Subscriptions = o.subscriptions })
	apply("versions-per-key", func() { cfg.Seed.VersionsPerKey = o.versionsPerKey })
	apply("vault-prefix", func() { cfg.Seed.VaultPrefix = o.vaultPrefix })
	apply("listen-host", func() { cfg.ListenHost = o.listenHost })
	apply("admin-listen", func() { cfg.AdminListen = o.adminListen })
	apply("token-lifetime", func() { cfg.TokenLifetime = o.tokenLifetime })
	if set["tenant-id"] {
		cfg.TenantID = o.tenantID
	}
	if set["client-id"] {
		cfg.ClientID = o.clientID
	}
	if set["client-secret"] {
		cfg.ClientSecret = o.clientSecret
	}
	if o.noAdmin {
		cfg.DisableAdmin = true
	}
	if o.hostRouting {
		cfg.HostRouting = true
	}
	if o.hostOnly {
		cfg.HostRoutingOnly = true
	}
	if o.irregularPages {
		cfg.DefaultFaults.IrregularPages = true
		for i := range cfg.Vaults {
			if cfg.Vaults[i].Faults != nil {
				cfg.Vaults[i].Faults.IrregularPages = true
			}
		}
	}
	if o.noThrottle {
		cfg.DisableThrottling = true
	}
	if set["event-retry-scale"] {
		cfg.EventDelivery.RetryScale = o.eventScale
	}
	if o.dataDir != "" {
		cfg.DataDir = o.dataDir
	}
	if o.caFile != "" {
		cfg.CAFile = o.caFile
	}
	cfg.Logger = logger
	return cfg, cfg.Validate()
}

func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level: %w", err)
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	} else if format != "json" {
		return zerolog.Nop(), fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("component", "akv-emulator").Logger(), nil
}

// run starts the emulator and blocks until ctx is done. ready, if not nil, receives
// the emulator once it serves (tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- *akvemu.Emulator) int {
	o, set, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "akv-emulator:", err)
		return 2
	}
	logger, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "akv-emulator:", err)
		return 2
	}
	cfg, err := buildConfig(o, set, logger)
	if err != nil {
		fmt.Fprintln(stderr, "akv-emulator:", err)
		return 2
	}
	begin := time.Now()
	emu, err := akvemu.Start(ctx, cfg)
	if err != nil {
		logger.Error().Err(err).Msg("start failed")
		return 1
	}
	defer func() {
		if err := emu.Close(); err != nil {
			logger.Warn().Err(err).Msg("close")
		}
	}()
	if o.manifest != "" {
		if err := emu.WriteManifest(o.manifest); err != nil {
			logger.Error().Err(err).Msg("write manifest")
			return 1
		}
	}
	printBanner(stdout, emu, o.manifest, time.Since(begin))
	if ready != nil {
		ready <- emu
	}
	<-ctx.Done()
	logger.Info().Msg("shutting down")
	return 0
}

func printBanner(w io.Writer, emu *akvemu.Emulator, manifest string, took time.Duration) {
	m := emu.Manifest()
	keys, pools := 0, 0
	for _, v := range emu.Vaults() {
		keys += v.Len()
		if v.Kind() == akvemu.KindManagedHSM {
			pools++
		}
	}
	fmt.Fprintf(w, "akv-emulator ready: %d vaults, %d managed HSM pools, %d keys, started in %s\n", len(m.Vaults)-pools, pools, keys, took.Round(time.Millisecond))
	fmt.Fprintf(w, "  tenant:         %s\n", m.TenantID)
	fmt.Fprintf(w, "  client id:      %s (client secret: see the manifest or the admin API)\n", m.ClientID)
	fmt.Fprintf(w, "  authority host: %s\n", m.AuthorityHost)
	fmt.Fprintf(w, "  resource mgr:   %s   (Azure Resource Manager: subscriptions, vaults, managedHSMs)\n", m.ResourceManagerURL)
	fmt.Fprintf(w, "  CA certificate: %s   (export SSL_CERT_FILE=%s)\n", m.CACertFile, m.CACertFile)
	if m.AdminURL != "" {
		fmt.Fprintf(w, "  admin API:      %s   (curl %s/admin/vaults)\n", m.AdminURL, m.AdminURL)
	}
	if manifest != "" {
		fmt.Fprintf(w, "  manifest:       %s\n", manifest)
	}
	if subs := emu.EventSubscriptions(); len(subs) > 0 {
		states := make([]string, len(subs))
		for i, s := range subs {
			states[i] = s.Name + " " + string(s.ProvisioningState)
		}
		fmt.Fprintf(w, "  event grid:     %s\n", strings.Join(states, ", "))
	}
	if m.HostRouting != nil {
		fmt.Fprintf(w, "  host routing:   %s (resource %s; dial *.vault.localhost there)\n", m.HostRouting.Address, m.HostRouting.Resource)
	}
	shown := map[akvemu.Kind]int{}
	for _, v := range m.Vaults {
		label := "vault"
		if v.Kind == akvemu.KindManagedHSM {
			label = "pool "
		}
		if shown[v.Kind]++; shown[v.Kind] <= 3 {
			fmt.Fprintf(w, "  %s %-12s %s\n", label, v.Name, v.URL)
		}
	}
	if more := shown[akvemu.KindVault] + shown[akvemu.KindManagedHSM] - min(shown[akvemu.KindVault], 3) - min(shown[akvemu.KindManagedHSM], 3); more > 0 {
		fmt.Fprintf(w, "  … %d more in the manifest\n", more)
	}
	fmt.Fprintln(w, "Go clients: azidentity.NewClientSecretCredential with Cloud.ActiveDirectoryAuthorityHost = authority host and DisableInstanceDiscovery,")
	fmt.Fprintln(w, "            azkeys.ClientOptions{DisableChallengeResourceVerification: true}, a transport trusting the CA. Ctrl-C to stop.")
}
