package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// fixtureSubscriptions spreads a fixture's vaults so that akvsync's own
// per-subscription pacing never binds: the fixtures measure the pipeline's
// cost, with no throttling anywhere.
const fixtureSubscriptions = 10

// fixture is an embedded akvsync (api --embedded, its own NATS, worker and
// bbolt) against an emulator with zero latency and no throttling, synced
// once with sync-all. Figures of the same size share it: P2 and flat's
// smaller run; flat's larger run, P5, storage and P6's embedded figure.
type fixture struct {
	vaults, keys int
	em           *emulator
	d            *deployment
	// synced is set once the sync-all ran; the results outlive the
	// processes.
	synced  bool
	sync    syncResult
	syncErr error
	// peakRSS and hwm are the embedded process's memory during the sync.
	peakRSS, hwm int64
	// inventory is the bbolt file of the embedded worker.
	inventory string
}

// fixture returns the fixture of that size, started; another live one is
// stopped first (its results are kept).
func (e *env) fixture(ctx context.Context, vaults, keys int) (*fixture, error) {
	k := [2]int{vaults, keys}
	fx := e.fixtures[k]
	if fx == nil {
		fx = &fixture{vaults: vaults, keys: keys}
		e.fixtures[k] = fx
	}
	if fx.d != nil {
		return fx, nil
	}
	if e.live != nil && e.live != fx {
		e.live.stop()
	}
	var err error
	spec := emuSpec{vaults: vaults, keys: keys, subscriptions: fixtureSubscriptions}
	if fx.em, err = e.startEmulator(ctx, fmt.Sprintf("emulator-%dx%d", vaults, keys), spec); err != nil {
		return nil, err
	}
	if fx.d, err = e.startEmbedded(ctx, fmt.Sprintf("embedded-%dx%d", vaults, keys), fx.em, false, "--vault-rate", "-1", "--subscription-rate", "-1"); err != nil {
		_ = fx.em.p.stop()
		fx.em = nil
		return nil, err
	}
	fx.inventory = filepath.Join(fx.d.dir, "data", "inventory.db")
	if err := fx.d.register(ctx, fx.em, false); err != nil {
		fx.stop()
		return nil, err
	}
	e.live = fx
	// A restarted fixture syncs again.
	fx.synced, fx.syncErr = false, nil
	return fx, nil
}

// ensureSynced runs the fixture's sync-all once, sampling the embedded
// process's memory.
func (e *env) ensureSynced(ctx context.Context, vaults, keys int) (*fixture, error) {
	if fx := e.fixtures[[2]int{vaults, keys}]; fx != nil && fx.synced {
		return fx, fx.syncErr
	}
	fx, err := e.fixture(ctx, vaults, keys)
	if err != nil {
		return nil, err
	}
	e.logf("embedded sync-all of %d vaults × %d keys …", vaults, keys)
	s := sampleMemory(fx.d.api.pid(), 250*time.Millisecond)
	fx.sync, fx.syncErr = fx.d.syncAll(ctx, vaults*keys, 100*time.Millisecond, e.o.timeout)
	fx.peakRSS, fx.hwm = s.stop()
	fx.synced = true
	if fx.syncErr == nil {
		e.logf("embedded sync-all of %d keys: completed in %s, queryable in %s (%.0f keys/s); embedded RSS peak %.0f MB",
			fx.sync.Keys, fx.sync.Completed.Round(time.Millisecond), fx.sync.Queryable.Round(time.Millisecond), fx.sync.keysPerSecond(), float64(fx.peakRSS)/mb)
	}
	return fx, fx.syncErr
}

// stop stops the fixture's processes; its data directory stays.
func (fx *fixture) stop() {
	if fx.d != nil {
		fx.d.stop()
		fx.d = nil
	}
	if fx.em != nil {
		_ = fx.em.p.stop()
		fx.em = nil
	}
}
