package akvemu_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// BenchmarkListAndGet is a full sync of a 1,000-key vault through the real azkeys
// client over HTTPS: page through the vault and GetKey every key with 8 workers.
// It reports keys/s (GetKey calls plus their share of list pages).
func BenchmarkListAndGet(b *testing.B) {
	const keys, workers = 1000, 8
	e := setup(b, func(c *akvemu.Config) { c.DisableThrottling = true })
	v := addVault(b, e, akvemu.VaultSpec{Name: "bench", Keys: keys})
	c := newClient(b, e, v, nil)
	ctx := context.Background()
	if _, err := c.GetKey(ctx, v.Keys()[0].Name, "", nil); err != nil { // challenge + token
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		names := make(chan string, 2*akvemu.MaxPageSize)
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range names {
					if _, err := c.GetKey(ctx, n, "", nil); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		got := 0
		pager := c.NewListKeyPropertiesPager(nil)
		for pager.More() {
			p, err := pager.NextPage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range p.Value {
				names <- k.KID.Name()
				got++
			}
		}
		close(names)
		wg.Wait()
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		if got != keys {
			b.Fatalf("listed %d keys", got)
		}
	}
	b.ReportMetric(float64(b.N*keys)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkGetKeyParallel measures GetKey alone through the real client.
func BenchmarkGetKeyParallel(b *testing.B) {
	e := setup(b, func(c *akvemu.Config) { c.DisableThrottling = true })
	v := addVault(b, e, akvemu.VaultSpec{Name: "bench-get", Keys: 100})
	c := newClient(b, e, v, nil)
	ctx := context.Background()
	keys := v.Keys()
	if _, err := c.GetKey(ctx, keys[0].Name, "", nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.GetKey(ctx, keys[i%len(keys)].Name, "", nil); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkServeGetKeyRaw measures the emulator's own GetKey cost: plain HTTPS
// requests with a bearer token, no SDK decoding on the client side.
func BenchmarkServeGetKeyRaw(b *testing.B) {
	e := setup(b, func(c *akvemu.Config) { c.DisableThrottling = true })
	v := addVault(b, e, akvemu.VaultSpec{Name: "bench-raw", Keys: 100})
	cred, err := e.Credential()
	if err != nil {
		b.Fatal(err)
	}
	auth := "Bearer " + vaultToken(b, cred)
	keys := v.Keys()
	urls := make([]string, len(keys))
	for i, k := range keys {
		urls[i] = v.URL() + "/keys/" + k.Name + "/?api-version=2025-07-01"
	}
	client := e.HTTPClient()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		buf := make([]byte, 8<<10)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, urls[i%len(urls)], nil)
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
