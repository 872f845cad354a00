package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	bolt "go.etcd.io/bbolt"

	"github.com/akvsync/akvsync/pkg/akvemu"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// baselineBatch is how many records the baseline commits per bbolt
// transaction.
const baselineBatch = 500

// baselineRecord is what the direct loop stores per key: the SDK's key
// bundle as JSON, with where it came from.
type baselineRecord struct {
	Vault  string           `json:"vault"`
	Bundle azkeys.KeyBundle `json:"bundle"`
	Synced time.Time        `json:"synced"`
}

// runBaseline is P2's baseline: a direct in-process loop with the real
// azkeys client over HTTPS to the emulator — list every vault's keys and
// GetKey each (akvsync's default parallelism: 16 vaults, 16 gets per
// vault), writing the records to a bbolt file (fsync on) in batches of
// baselineBatch. It returns the keys written and the time taken.
func runBaseline(ctx context.Context, em *emulator, dir string) (int, time.Duration, error) {
	cred, err := em.m.Credential()
	if err != nil {
		return 0, 0, err
	}
	opts, err := em.m.ClientOptions()
	if err != nil {
		return 0, 0, err
	}
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(filepath.Join(dir, "baseline.db"))
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("keys")); return err }); err != nil {
		return 0, 0, err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	records := make(chan baselineRecord, 4*baselineBatch)
	written := 0
	writerDone := make(chan error, 1)
	go func() {
		batch := make([]baselineRecord, 0, baselineBatch)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("keys"))
				for _, r := range batch {
					raw, err := json.Marshal(r)
					if err != nil {
						return err
					}
					if err := b.Put([]byte(r.Vault+"/"+r.Bundle.Key.KID.Name()), raw); err != nil {
						return err
					}
				}
				return nil
			})
			written += len(batch)
			batch = batch[:0]
			return err
		}
		for r := range records {
			batch = append(batch, r)
			if len(batch) == baselineBatch {
				if err := flush(); err != nil {
					cancel(err)
					for range records {
					}
					writerDone <- err
					return
				}
			}
		}
		writerDone <- flush()
	}()

	start := time.Now()
	var wg sync.WaitGroup
	vaultSem := make(chan struct{}, akvsync.DefaultVaultParallelism)
	for _, v := range em.m.Vaults {
		wg.Add(1)
		vaultSem <- struct{}{}
		go func(v akvemu.ManifestVault) {
			defer wg.Done()
			defer func() { <-vaultSem }()
			if err := baselineVault(ctx, v, cred, opts, records); err != nil {
				cancel(fmt.Errorf("vault %s: %w", v.Name, err))
			}
		}(v)
	}
	wg.Wait()
	close(records)
	werr := <-writerDone
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return written, took, err
	}
	return written, took, werr
}

// baselineVault lists one vault and fetches every key, 16 at once.
func baselineVault(ctx context.Context, v akvemu.ManifestVault, cred azcore.TokenCredential, opts *azkeys.ClientOptions, out chan<- baselineRecord) error {
	c, err := azkeys.NewClient(v.URL, cred, opts)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, akvsync.DefaultGetConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			wg.Wait()
			return err
		}
		for _, k := range page.Value {
			name := k.KID.Name()
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r, err := c.GetKey(ctx, name, "", nil)
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				select {
				case out <- baselineRecord{Vault: v.Name, Bundle: r.KeyBundle, Synced: time.Now()}:
				case <-ctx.Done():
				}
			}()
		}
	}
	wg.Wait()
	return firstErr
}
