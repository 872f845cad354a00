package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// emuSpec is what a figure asks of the emulator.
type emuSpec struct {
	vaults, keys  int
	subscriptions int
	latency       time.Duration
	// limits keeps Azure's default throttling (per vault and per
	// subscription); without it the emulator never answers 429.
	limits      bool
	hostRouting bool
}

// emulator is a running akv-emulator process.
type emulator struct {
	p        *proc
	manifest string
	m        akvemu.Manifest
	spec     emuSpec
	hc       *http.Client
}

// startEmulator runs cmd/akv-emulator with a spec file and waits for its
// manifest.
func (e *env) startEmulator(ctx context.Context, name string, s emuSpec) (*emulator, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	spec := map[string]any{
		"seed": map[string]any{"vaults": s.vaults, "keys_per_vault": s.keys, "seed": 1, "subscriptions": max(1, s.subscriptions)},
	}
	if !s.limits {
		spec["disable_throttling"] = true
	}
	if s.hostRouting {
		// One listener for every vault: 100,000 vaults need no more
		// file descriptors than one.
		spec["host_routing_only"] = true
	}
	if s.latency > 0 {
		spec["default_faults"] = map[string]any{"latency": s.latency.String()}
	}
	raw, _ := json.Marshal(spec)
	specFile := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specFile, raw, 0o600); err != nil {
		return nil, err
	}
	em := &emulator{manifest: filepath.Join(dir, "manifest.json"), spec: s, hc: &http.Client{Timeout: 5 * time.Minute}}
	em.p, err = e.start(dir, "akv-emulator", "akv-emulator", nil, "--spec", specFile, "--manifest", em.manifest,
		"--data-dir", dir, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	err = waitFor(ctx, 10*time.Minute, 100*time.Millisecond, func() error {
		if err := em.p.exited(); err != nil {
			return err
		}
		m, err := akvemu.LoadManifest(em.manifest)
		if err != nil {
			return err
		}
		em.m = m
		return nil
	})
	if err != nil {
		_ = em.p.stop()
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e.logf("emulator up: %d vaults × %d keys, %d subscriptions, latency %s, limits %v, host routing %v (%s)",
		s.vaults, s.keys, max(1, s.subscriptions), s.latency, s.limits, s.hostRouting, time.Since(begin).Round(time.Millisecond))
	return em, nil
}

// admin calls the emulator's admin API.
func (em *emulator) admin(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, em.m.AdminURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := em.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("emulator admin %s %s: %d %s", method, path, resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// resetCounters zeroes every vault's request counters.
func (em *emulator) resetCounters(ctx context.Context) error {
	return em.admin(ctx, http.MethodDelete, "/admin/counters", nil)
}

// callCounts sums the request counters of every vault.
type callCounts struct {
	// Calls are the requests that reached the vaults, 401 challenges
	// excluded (the SDK's unauthenticated probe once per client).
	Calls      int64 `json:"calls"`
	Challenges int64 `json:"challenges"`
	Throttled  int64 `json:"throttled"`
	ListPages  int64 `json:"list_pages"`
	GetKeys    int64 `json:"get_keys"`
	Errors     int64 `json:"errors"`
}

func (em *emulator) counters(ctx context.Context) (callCounts, error) {
	var all []akvemu.Counters
	if err := em.admin(ctx, http.MethodGet, "/admin/counters", &all); err != nil {
		return callCounts{}, err
	}
	var c callCounts
	for _, v := range all {
		for op, byStatus := range v.ByOperation {
			for status, n := range byStatus {
				switch {
				case status == http.StatusUnauthorized:
					c.Challenges += n
					continue
				case status == http.StatusTooManyRequests:
					c.Throttled += n
				case status == http.StatusOK && op == akvemu.OpListKeys:
					c.ListPages += n
				case status == http.StatusOK && op == akvemu.OpGetKey:
					c.GetKeys += n
				case status != http.StatusOK:
					c.Errors += n
				}
				c.Calls += n
			}
		}
	}
	return c, nil
}

// minimumCalls is the least a full sync can do: every list page plus one
// GetKey per key.
func (s emuSpec) minimumCalls() int64 {
	pages := (s.keys + akvemu.MaxPageSize - 1) / akvemu.MaxPageSize
	return int64(s.vaults) * int64(max(1, pages)+s.keys)
}

func (s emuSpec) totalKeys() int { return s.vaults * s.keys }
