package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/eventgrid"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

// demoMarker marks a data directory as a demo's: only such a directory is
// wiped when a new demo starts.
const demoMarker = "demo.json"

// demoRun is the emulator of a --demo process and what the demo prints.
type demoRun struct {
	o    options
	emu  *akvemu.Emulator
	conn azure.Connection
	log  zerolog.Logger
	// webhookSecret authenticates the emulator's Event Grid deliveries to
	// the API; webhookCAs trusts the API's self-signed certificate, added
	// once it exists (before the subscription that uses it).
	webhookSecret eventgrid.Secret
	webhookCAs    *x509.CertPool
}

// prepareDemoDir gives the demo a clean data directory. The emulator's
// vaults get new ports at every start, so the state of a previous demo
// (registry, inventory) would point at vaults that no longer exist. A
// directory that holds state but was not a demo's is refused, never wiped.
//
// The marker is written first, before anything else goes in the
// directory, so a demo that fails to start leaves a directory the next
// demo recognises and cleans.
func prepareDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("--demo needs an empty --data-dir or a previous demo's: %s has other files", dir)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFacts(filepath.Join(dir, demoMarker), demoFacts{})
}

func startDemo(ctx context.Context, o options, log zerolog.Logger) (*demoRun, error) {
	// Host routing only: every vault is https://<name>.vault.localhost:PORT
	// (pools: .managedhsm.localhost) on one listener, as Azure names them
	// by host. A connection created through the API then reaches them with
	// challenge resource verification on and a key_vault_dns_suffix, like
	// any Azure Stack (docs/walkthrough.md); *.localhost is loopback.
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cas := x509.NewCertPool()
	emu, err := akvemu.Start(ctx, akvemu.Config{
		Seed:            akvemu.SeedSpec{Vaults: o.demoVaults, KeysPerVault: o.demoKeys, ManagedHSMs: o.demoHSMs, Seed: 1},
		HostRoutingOnly: true,
		EventDelivery:   akvemu.EventDeliveryConfig{RootCAs: cas},
		DataDir:         filepath.Join(o.dataDir, "emulator"),
		Logger:          log.With().Str("component", "emulator").Logger().Level(zerolog.WarnLevel),
	})
	if err != nil {
		return nil, fmt.Errorf("demo emulator: %w", err)
	}
	mf := filepath.Join(o.dataDir, "emulator-manifest.json")
	if err := emu.WriteManifest(mf); err != nil {
		_ = emu.Close()
		return nil, err
	}
	m, err := connections.ReadEmulatorManifest(mf)
	if err != nil {
		_ = emu.Close()
		return nil, err
	}
	conn, err := connections.EmulatorConnectionFrom(m)
	if err != nil {
		_ = emu.Close()
		return nil, err
	}
	return &demoRun{o: o, emu: emu, conn: conn, log: log, webhookCAs: cas,
		webhookSecret: eventgrid.Secret{Name: "demo-emulator", Value: hex.EncodeToString(secret)}}, nil
}

func (d *demoRun) close() { _ = d.emu.Close() }

// demoFacts is what <data-dir>/demo.json holds for scripts.
type demoFacts struct {
	APIURL           string   `json:"api_url"`
	Username         string   `json:"username"`
	Password         string   `json:"password,omitempty"`
	Token            string   `json:"token,omitempty"`
	CACertFile       string   `json:"ca_cert_file,omitempty"`
	Vaults           []string `json:"vaults"`
	EmulatorManifest string   `json:"emulator_manifest"`
	FirstJobID       string   `json:"first_job_id,omitempty"`
}

// run registers the emulator's vaults, prints how to use the API, and
// runs a first sync of every vault, printing its progress.
func (d *demoRun) run(ctx context.Context, out io.Writer, plane *control.Plane, authSvc *auth.Service, apiURL, certFile, password string) error {
	m := d.emu.Manifest()
	bySub := map[string][]control.AddVault{}
	var order []string
	for _, v := range m.Vaults {
		if _, ok := bySub[v.SubscriptionID]; !ok {
			order = append(order, v.SubscriptionID)
		}
		// As Resource Manager lists it: a pool is a Microsoft.KeyVault/managedHSMs
		// with an hsmUri.
		props := control.VaultProperties{VaultURI: v.URL}
		if v.Kind == akvemu.KindManagedHSM {
			props = control.VaultProperties{HsmURI: v.URL}
		}
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], control.AddVault{Name: v.Name, Type: v.ResourceType,
			AzureVaultID: v.ResourceID, Location: v.Location, Properties: props})
	}
	var names []string
	for _, sub := range order {
		added, err := plane.Vaults.AddVaults(ctx, control.AddVaultsRequest{Connection: d.conn.Name, SubscriptionID: sub, Vaults: bySub[sub]})
		if err != nil {
			return fmt.Errorf("demo: register vaults: %w", err)
		}
		for _, v := range added {
			names = append(names, v.QualifiedName())
		}
	}
	facts := demoFacts{APIURL: apiURL, Username: auth.DefaultBootstrapAdminUsername, Password: password, CACertFile: certFile,
		Vaults: names, EmulatorManifest: filepath.Join(d.o.dataDir, "emulator-manifest.json")}
	if password != "" {
		tok, err := authSvc.IssueToken(ctx, auth.TokenRequest{Username: facts.Username, Password: password}, "127.0.0.1")
		if err != nil {
			return fmt.Errorf("demo: token: %w", err)
		}
		facts.Token = tok.JWT
	}
	k := ""
	if certFile != "" {
		k = " --cacert " + certFile
	}
	pushVault, err := d.subscribeEvents(ctx, apiURL, certFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `
akvsync demo — %d emulated vaults and %d Managed HSM %s × %d keys, embedded NATS, one worker
  API       %s
  dashboard %s/ui/   (sign in with the user and password below)
  user      %s
  password  %s   (shown once; also in %s, mode 0600)

Try it (a token lives %s; get a new one with the first command):
  TOKEN=$(curl -s%s -X POST %s/api/v1/auth/tokens -H 'Content-Type: application/json' \
      -d '{"username":"%s","password":"%s"}' | sed 's/.*"jwt":"\([^"]*\)".*/\1/')
  curl -s%s -H "Authorization: Bearer $TOKEN" %s/api/v1/cckm/azure/vaults?limit=3
  curl -s%s -H "Authorization: Bearer $TOKEN" -X POST %s/api/v1/cckm/azure/synchronization-jobs \
      -H 'Content-Type: application/json' -d '{"synchronize_all":true}'
  curl -s%s -H "Authorization: Bearer $TOKEN" %s/api/v1/cckm/azure/synchronization-jobs?limit=1
  curl -s%s -H "Authorization: Bearer $TOKEN" '%s/api/v1/cckm/azure/keys?limit=2&key_size=2048'

Event Grid push is wired: the emulator sends key events to the API's webhook, so a key
created or rotated in an emulated vault is in the inventory within a second, with no job:
  curl -s -X POST %s/admin/vaults/%s/keys/pushed-key -d '{"kty":"RSA"}'
  curl -s%s -H "Authorization: Bearer $TOKEN" '%s/api/v1/cckm/azure/keys?key_name=pushed-key'

`, d.o.demoVaults, d.o.demoHSMs, plural(d.o.demoHSMs, "pool", "pools"), d.o.demoKeys, apiURL, apiURL, facts.Username, orDash(password), filepath.Join(d.o.dataDir, demoMarker),
		authSvc.TokenLifetime(), k, apiURL, facts.Username, password, k, apiURL, k, apiURL, k, apiURL, k, apiURL,
		d.emu.AdminURL(), pushVault, k, apiURL)

	start := time.Now()
	job, err := plane.Jobs.Create(ctx, control.CreateJobRequest{SynchronizeAll: true}, facts.Username)
	if err != nil {
		return fmt.Errorf("demo: first sync: %w", err)
	}
	facts.FirstJobID = job.ID
	if err := writeFacts(filepath.Join(d.o.dataDir, demoMarker), facts); err != nil {
		return err
	}
	fmt.Fprintf(out, "First sync-all job %s started.\n", job.ID)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last [2]int // vaults done and keys at the last line printed
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		j, err := plane.Jobs.Get(ctx, job.ID)
		if err != nil {
			return fmt.Errorf("demo: first sync: %w", err)
		}
		took := time.Since(start)
		keys := int(j.Progress.Fetched + j.Progress.Unchanged)
		if j.OverallStatus == events.JobInProgress {
			if now := [2]int{j.Progress.Terminal(), keys}; now != last {
				fmt.Fprintln(out, progressLine(now[0], j.VaultTotal, keys, took))
				last = now
			}
			continue
		}
		fmt.Fprintf(out, "Sync-all job %s %s: %d vaults, %d keys in %s (%.0f keys/s).\n",
			j.ID, j.OverallStatus, j.VaultTotal, keys, took.Round(time.Millisecond), float64(keys)/took.Seconds())
		if !d.o.demoExit {
			fmt.Fprintln(out, "The API keeps serving; Ctrl-C stops it.")
		}
		return nil
	}
}

// subscribeEvents subscribes the API's Event Grid webhook to the
// emulator's key events (the handshake runs before it returns) and names
// a vault to try it on.
func (d *demoRun) subscribeEvents(ctx context.Context, apiURL, certFile string) (vault string, err error) {
	if certFile != "" {
		pem, err := os.ReadFile(certFile) // #nosec G304 -- the certificate this process wrote
		if err != nil {
			return "", err
		}
		d.webhookCAs.AppendCertsFromPEM(pem)
	}
	err = d.emu.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "akvsync-demo", Endpoint: apiURL + httpapi.EventGridPath,
		DeliveryHeaders: map[string]string{eventgrid.SecretHeader: d.webhookSecret.Value}})
	if err != nil {
		return "", fmt.Errorf("demo: event grid subscription: %w", err)
	}
	for _, v := range d.emu.Manifest().Vaults {
		if v.Kind != akvemu.KindManagedHSM {
			return v.Name, nil
		}
	}
	return "", nil
}

// progressLine is the demo's progress line: vaults done, keys, rate and
// an estimate of the time left from the vaults done so far. The demo
// prints it only when vaults or keys moved.
func progressLine(done, total, keys int, took time.Duration) string {
	rate := 0.0
	if s := took.Seconds(); s > 0 {
		rate = float64(keys) / s
	}
	eta := "ETA –"
	if done > 0 && done < total {
		eta = "ETA " + (time.Duration(float64(took) * float64(total-done) / float64(done))).Round(time.Second).String()
	}
	return fmt.Sprintf("  … %d/%d vaults done, %d keys, %.0f keys/s, %s", done, total, keys, rate, eta)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func orDash(s string) string {
	if s == "" {
		return "(from your users file)"
	}
	return s
}

func writeFacts(path string, f demoFacts) error {
	raw, err := json.MarshalIndent(f, "", "  ") // #nosec G117 -- the demo's facts file hands the generated local admin password to its operator on purpose; written 0600 in the data directory
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o600) // #nosec G703 -- the demo marker file under the operator's own --data-dir
}
