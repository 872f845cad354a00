package events

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePrices(t *testing.T) {
	p, err := ParsePrices(strings.NewReader(`{"hsm_key_per_10k": 0.03}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Prices{Currency: "USD", StandardPer10k: DefaultStandardPer10k, HSMKeyPer10k: 0.03}); p != want {
		t.Errorf("prices %+v, want %+v", p, want)
	}
	for _, bad := range []string{`{"standard_per_10k": -1}`, `{"currency": "dollars"}`, `{"bogus": 1}`, `[`} {
		if _, err := ParsePrices(strings.NewReader(bad)); !errors.Is(err, ErrInvalidPrices) {
			t.Errorf("ParsePrices(%s) = %v, want ErrInvalidPrices", bad, err)
		}
	}
	if err := (Prices{}).Validate(); err != nil {
		t.Errorf("the zero table (defaults) is invalid: %v", err)
	}
	if err := (Prices{Currency: "USD", StandardPer10k: math.NaN()}).Validate(); err == nil {
		t.Error("NaN accepted")
	}
}

func TestNewJobStats(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	j := Job{CreatedAt: created, OverallStatus: JobInProgress, VaultTotal: 4}
	p := JobProgress{Running: 1, Pending: 2, Completed: 1, Listed: 100, New: 60, Changed: 10, Unchanged: 30,
		Azure: AzureUsage{ListKeys: 6, GetKey: 72, Throttled: 2, Unauthenticated: 2, StandardOps: 70, HSMKeyOps: 2, ManagedHSMOps: 10,
			LimiterWait: 1500 * time.Millisecond}}
	s := NewJobStats(j, p, Prices{}, created.Add(10*time.Second))
	if s.ElapsedSeconds != 10 || s.KeysPerSecond != 10 {
		t.Errorf("elapsed %v, rate %v", s.ElapsedSeconds, s.KeysPerSecond)
	}
	if s.ETASeconds == nil || *s.ETASeconds != 30 { // 1 of 4 vaults in 10 s
		t.Errorf("eta %v, want 30", s.ETASeconds)
	}
	if want := (70*0.03 + 2*0.15) / 10000; math.Abs(s.Cost.Estimated-want) > 1e-12 {
		t.Errorf("cost %v, want %v", s.Cost.Estimated, want)
	}
	if s.Azure.Requests != 78 || s.Azure.Calls["get_key"] != 72 || s.Azure.LimiterWaitSeconds != 1.5 || s.Vaults.Total != 4 {
		t.Errorf("stats %+v", s)
	}
	p.Completed, p.Running, p.Pending = 0, 1, 3
	if s := NewJobStats(j, p, Prices{}, created.Add(time.Second)); s.ETASeconds != nil {
		t.Errorf("eta %v before any vault finished, want null", *s.ETASeconds)
	}
	done := created.Add(20 * time.Second)
	j.OverallStatus, j.CompletedAt = JobCompleted, &done
	if s := NewJobStats(j, p, Prices{}, created.Add(time.Hour)); s.ElapsedSeconds != 20 || s.ETASeconds == nil || *s.ETASeconds != 0 {
		t.Errorf("finished job: elapsed %v eta %v", s.ElapsedSeconds, s.ETASeconds)
	}
}

func TestJobProgressAddVault(t *testing.T) {
	v := JobVault{Status: VaultCompleted, Listed: 5, Fetched: 3, New: 2, Changed: 1, Unchanged: 2, Azure: AzureUsage{ListKeys: 2, GetKey: 3, StandardOps: 4}}
	var p JobProgress
	p.AddVault(v, 1)
	p.AddVault(v, 1)
	p.AddVault(v, -1)
	if p.Completed != 1 || p.Listed != 5 || p.New != 2 || p.Azure.Calls() != 5 || p.Azure.StandardOps != 4 {
		t.Errorf("progress %+v", p)
	}
}

func TestLoadPrices(t *testing.T) {
	p, err := LoadPrices("")
	if err != nil || p.StandardPer10k != 0.03 {
		t.Fatalf("defaults %+v %v", p, err)
	}
	f := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(f, []byte(`{"currency":"EUR","standard_per_10k":-1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrices(f); err == nil {
		t.Error("a negative price was accepted")
	}
}
