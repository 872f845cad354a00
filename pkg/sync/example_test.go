package sync_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/akvemu"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// emulatorKeys is a KeySource whose every connection reaches one emulator.
type emulatorKeys struct{ emu *akvemu.Emulator }

func (k emulatorKeys) KeysClient(_ context.Context, connection, vaultURI string, throttle akvsync.Throttle) (*azkeys.Client, error) {
	if connection != "emulator" {
		return nil, fmt.Errorf("%w %q", akvsync.ErrUnknownConnection, connection)
	}
	cred, err := k.emu.Credential()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", akvsync.ErrPermanent, err)
	}
	opts := k.emu.ClientOptions()
	opts.PerRetryPolicies = append(opts.PerRetryPolicies, pacer{throttle})
	return azkeys.NewClient(vaultURI, cred, opts)
}

// pacer runs once per HTTP attempt: it waits for the throttle, then tells
// it the answer.
type pacer struct{ t akvsync.Throttle }

func (p pacer) Do(req *policy.Request) (*http.Response, error) {
	start := time.Now()
	if err := p.t.Wait(req.Raw().Context()); err != nil {
		return nil, err
	}
	sent := time.Now()
	resp, err := req.Next()
	a := akvsync.Attempt{Operation: akvsync.OpOther, Wait: sent.Sub(start), Duration: time.Since(sent)}
	if resp != nil {
		a.Status = resp.StatusCode
		p.t.Observe(resp.StatusCode)
	}
	if o, ok := p.t.(akvsync.AttemptObserver); ok {
		o.ObserveAttempt(a)
	}
	return resp, err
}

// statuses is a throttle that records the status of every attempt.
type statuses struct {
	*akvsync.AdaptiveLimiter
	seen *[]int
}

func (s statuses) ObserveAttempt(a akvsync.Attempt) { *s.seen = append(*s.seen, a.Status) }

// A KeySource gives the syncer a vault's Key Vault client; the syncer
// paces it with its own throttle. This one reaches an emulator; the first
// attempt of the listing is the unauthenticated request that Key Vault's
// authentication challenge answers 401.
func ExampleKeySource() {
	ctx := context.Background()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 1, KeysPerVault: 3, Seed: 1}, DisableAdmin: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = emu.Close() }()

	var keys akvsync.KeySource = emulatorKeys{emu}
	var seen []int
	throttle := statuses{akvsync.NewAdaptiveLimiter(akvsync.DefaultVaultRate), &seen}
	client, err := keys.KeysClient(ctx, "emulator", emu.Vaults()[0].URL(), throttle)
	if err != nil {
		fmt.Println(err)
		return
	}
	n := 0
	for pager := client.NewListKeyPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		n += len(page.Value)
	}
	fmt.Println("keys:", n, "attempts:", seen)

	_, err = keys.KeysClient(ctx, "prod", emu.Vaults()[0].URL(), throttle)
	fmt.Println(errors.Is(err, akvsync.ErrUnknownConnection))
	// Output:
	// keys: 3 attempts: [401 200]
	// true
}

// Retry repeats a NATS call while it fails transiently (a JetStream leader
// election, a reconnect), with a doubling backoff.
func ExampleRetry() {
	calls := 0
	err := akvsync.Retry(context.Background(), zerolog.Nop(), akvsync.RetryPolicy{Initial: time.Millisecond}, "read job",
		func(context.Context) error {
			calls++
			if calls < 3 {
				return nats.ErrTimeout
			}
			return nil
		})
	fmt.Println(calls, err)
	// Output: 3 <nil>
}
