package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/testbin"
)

// TestSmallestRun runs the command end to end at its smallest size: with
// the api and akv-emulator binaries (built once by testbin), it runs P2
// (an embedded sync-all beside the azkeys→bbolt loop) and storage (the
// same inventory's bbolt file), and checks the JSON report holds every row with its baseline.
// Goals are not asserted: they are what the benchmark measures.
func TestSmallestRun(t *testing.T) {
	bin := testbin.Dir(t, testbin.API, testbin.Emulator) // skipped under -short
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-p2", "-storage", "-json", "-work-dir", t.TempDir(), "-bin", bin,
		"-p2.vaults", "2", "-p2.keys", "30", "-big.vaults", "2", "-big.keys", "30"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Figures) != 2 || rep.Figures[0].Figure != figP2 || rep.Figures[1].Figure != figStorage {
		t.Fatalf("figures %+v, want p2 then storage", rep.Figures)
	}
	for _, f := range rep.Figures {
		if f.Error != "" {
			t.Errorf("%s: %s", f.Figure, f.Error)
		}
		if len(f.Rows) == 0 || f.Rows[0].Ratio == nil || f.Rows[0].Baseline == nil || f.Rows[0].Pass == nil {
			t.Fatalf("%s: first row %+v lacks baseline, ratio or verdict", f.Figure, f.Rows)
		}
		if f.Rows[0].Value <= 0 || *f.Rows[0].Baseline <= 0 {
			t.Errorf("%s: value %v, baseline %v", f.Figure, f.Rows[0].Value, *f.Rows[0].Baseline)
		}
	}
	// The inventory of 60 keys costs bytes in every bucket: a stored key is
	// at least its JSON record's size.
	if r := rep.Figures[1].Rows[0]; *r.Ratio < 0.5 {
		t.Errorf("storage ratio %v: the bbolt stats missed buckets", *r.Ratio)
	}
	if !bytes.Contains(stderr.Bytes(), []byte("embedded keys/s ÷ azkeys→bbolt loop")) {
		t.Errorf("the table (stderr with -json) lacks the P2 row:\n%s", stderr.String())
	}
}

// TestFreshPush runs the freshness figure's push run end to end at a
// small size: an embedded API with an Event Grid secret, the emulator
// delivering its key events to the webhook, creates and rotations each
// seen through the keys list. The schedule run is left out: it waits for
// whole minutes.
func TestFreshPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-fresh", "-json", "-work-dir", t.TempDir(), "-fresh.schedule=false",
		"-fresh.vaults", "2", "-fresh.keys", "30", "-fresh.changes", "4", "-fresh.latency", "0s", "-fresh.visible-timeout", "1m"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Figures) != 1 || rep.Figures[0].Figure != figFresh || rep.Figures[0].Error != "" {
		t.Fatalf("figures %+v, want fresh without error", rep.Figures)
	}
	rows := map[string]row{}
	for _, r := range rep.Figures[0].Rows {
		rows[r.Metric] = r
	}
	if r, ok := rows["push: change → visible p50"]; !ok || r.Value <= 0 {
		t.Errorf("push p50 row %+v", r)
	}
	// Issue 11: at most 2 Azure calls per change (401 challenges aside),
	// one GetKey per created or rotated RSA key.
	if r, ok := rows["push: Azure calls per change"]; !ok || r.Value != 1 || r.Pass == nil || !*r.Pass {
		t.Errorf("calls per change row %+v, want 1 call", r)
	}
	for m := range rows {
		if strings.Contains(m, "schedule") {
			t.Errorf("row %q with -fresh.schedule=false", m)
		}
	}
}

func TestParseOptions(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseOptions(nil, &stderr); err == nil {
		t.Fatal("no figure chosen: want an error")
	}
	o, err := parseOptions([]string{"-small", "-p1", "-p1.vaults", "7"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !o.figures[figP1] || len(o.figures) != 1 {
		t.Fatalf("figures %v", o.figures)
	}
	if o.p1Vaults != 7 || o.p1Keys != 250 || o.fanHostRouting {
		t.Fatalf("-small with -p1.vaults 7: vaults %d keys %d host routing %v", o.p1Vaults, o.p1Keys, o.fanHostRouting)
	}
	o, err = parseOptions([]string{"-small", "-fresh"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.frVaults != 4 || o.frChanges != 8 || o.frSpan != 20*time.Second || !o.frSchedule {
		t.Fatalf("-small -fresh: vaults %d changes %d span %s schedule %v", o.frVaults, o.frChanges, o.frSpan, o.frSchedule)
	}
	o, err = parseOptions([]string{"-all"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.figures) != len(figureOrder) || o.bigVaults != defaultBigVaults || !o.fanHostRouting {
		t.Fatalf("-all: %+v", o)
	}
	if _, err := parseOptions([]string{"-p2", "-p2.keys", "0"}, &stderr); err == nil {
		t.Fatal("-p2.keys 0: want an error")
	}
}
