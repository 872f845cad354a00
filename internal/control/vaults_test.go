package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
)

func TestAddVaults(t *testing.T) {
	t.Parallel()
	e := setup(t)
	vs := e.addVaults(t, testSub, "vault-a", "vault-b")
	if len(vs) != 2 {
		t.Fatalf("added %d vaults, want 2", len(vs))
	}
	for _, v := range vs {
		if !control.IsID(v.ID) || v.SubscriptionID != testSub || v.Connection != testConn || v.Cloud != control.DefaultCloud {
			t.Errorf("vault = %+v", v)
		}
		got, err := e.plane.Vaults.Get(testCtx(t), v.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.QualifiedName() != v.QualifiedName() || got.VaultURI != "https://"+v.Name+".vault.azure.net/" || got.Tags["env"] != "test" {
			t.Errorf("Get = %+v, want %+v", got, v)
		}
	}
}

func TestAddVaultsRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mod     func(*control.AddVaultsRequest)
		wantMsg string
	}{
		{"unknown connection", func(r *control.AddVaultsRequest) { r.Connection = "nope" }, `connection "nope" is not a known connection`},
		{"missing connection", func(r *control.AddVaultsRequest) { r.Connection = "" }, "connection is required"},
		{"missing subscription", func(r *control.AddVaultsRequest) { r.SubscriptionID = "" }, "subscription_id is required"},
		{"bad subscription", func(r *control.AddVaultsRequest) { r.SubscriptionID = "a.b" }, "subscription_id"},
		{"no vaults", func(r *control.AddVaultsRequest) { r.Vaults = nil }, "vaults must not be empty"},
		{"short name", func(r *control.AddVaultsRequest) { r.Vaults[1].Name = "ab" }, "vaults[1].name"},
		{"long name", func(r *control.AddVaultsRequest) { r.Vaults[0].Name = strings.Repeat("a", 25) }, "vaults[0].name"},
		{"bad characters", func(r *control.AddVaultsRequest) { r.Vaults[0].Name = "vault_a" }, "vaults[0].name"},
		{"missing name", func(r *control.AddVaultsRequest) { r.Vaults[0].Name = "" }, "vaults[0].name is required"},
		{"http uri", func(r *control.AddVaultsRequest) { r.Vaults[0].Properties.VaultURI = "http://x.vault.azure.net/" }, "vaults[0].properties.vaultUri"},
		{"relative uri", func(r *control.AddVaultsRequest) { r.Vaults[0].Properties.VaultURI = "/x" }, "vaults[0].properties.vaultUri"},
		{"missing uri", func(r *control.AddVaultsRequest) { r.Vaults[0].Properties.VaultURI = "" }, "vaults[0].properties.vaultUri is required"},
		{"duplicate in request", func(r *control.AddVaultsRequest) { r.Vaults[1].Name = "VAULT-A" }, "duplicates vaults[0].name"},
		{"other resource type", func(r *control.AddVaultsRequest) { r.Vaults[0].Type = "Microsoft.Storage/storageAccounts" }, `vaults[0].type "Microsoft.Storage/storageAccounts" must be`},
		{"id and azure_vault_id differ", func(r *control.AddVaultsRequest) {
			r.Vaults[0].ID = armID(testSub, "vaults", "vault-a")
			r.Vaults[0].AzureVaultID = armID(testSub, "vaults", "vault-b")
		}, "vaults[0].id and vaults[0].azure_vault_id differ"},
		{"resource id of another subscription", func(r *control.AddVaultsRequest) { r.Vaults[0].AzureVaultID = armID(otherSub, "vaults", "vault-a") }, "vaults[0].azure_vault_id names subscription " + otherSub},
		{"resource id of another vault", func(r *control.AddVaultsRequest) { r.Vaults[1].ID = armID(testSub, "vaults", "vault-a") }, "vaults[1].id names vault-a, not vault-b"},
		{"resource id of another type", func(r *control.AddVaultsRequest) { r.Vaults[0].ID = armID(testSub, "managedHSMs", "vault-a") }, "names a Microsoft.KeyVault/managedHSMs resource"},
		{"not a resource id", func(r *control.AddVaultsRequest) { r.Vaults[0].AzureVaultID = "vault-a" }, "is not an Azure Key Vault resource id"},
		{"hsmUri on a vault", func(r *control.AddVaultsRequest) {
			r.Vaults[0].Properties.HsmURI = "https://vault-a.managedhsm.azure.net/"
		}, "hsmUri is a property of Microsoft.KeyVault/managedHSMs"},
		{"pool URI for a vault", func(r *control.AddVaultsRequest) {
			r.Vaults[0].Properties.VaultURI = "https://vault-a.managedhsm.azure.net/"
		}, "is a Managed HSM pool's URI"},
		{"vault URI for a pool", func(r *control.AddVaultsRequest) { r.Vaults[0].Type = events.VaultTypeManagedHSM }, "is a key vault's URI"},
		{"pool without URI", func(r *control.AddVaultsRequest) {
			r.Vaults[0].Type, r.Vaults[0].Properties.VaultURI = events.VaultTypeManagedHSM, ""
		}, "vaults[0].properties.hsmUri is required for a Managed HSM pool"},
		{"backup limit too high", func(r *control.AddVaultsRequest) { r.CloudKeyBackupLimit = ptr(control.MaxCloudKeyBackupLimit + 1) }, "cloud_key_backup_limit must be from 1 to 65535"},
		{"negative backup limit", func(r *control.AddVaultsRequest) { r.CloudKeyBackupLimit = ptr(-1) }, "cloud_key_backup_limit"},
		{"vaults and azure", func(r *control.AddVaultsRequest) { r.Azure = r.Vaults }, "vaults and azure name the same list"},
		{"properties too large", func(r *control.AddVaultsRequest) {
			r.Vaults[0].Properties.StatusMessage = strings.Repeat("x", control.MaxVaultPropertiesBytes)
		}, "vaults[0].properties is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			req := vaultReq(testSub, "vault-a", "vault-b")
			tt.mod(&req)
			_, err := e.plane.Vaults.AddVaults(testCtx(t), req)
			wantErr(t, err, control.ErrInvalid)
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if keys := e.keys(t, events.BucketVaults); len(keys) != 0 {
				t.Errorf("vaults bucket has %v after a refused add", keys)
			}
		})
	}
}

func TestAddVaultsIsAllOrNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	existing := e.addVaults(t, testSub, "vault-b")[0]
	_, err := e.plane.Vaults.AddVaults(testCtx(t), vaultReq(testSub, "vault-a", "Vault-B", "vault-c"))
	wantErr(t, err, control.ErrConflict)
	if !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error %q does not say the vault exists", err)
	}
	keys := e.keys(t, events.BucketVaults)
	if len(keys) != 2 { // the existing record and its index entry
		t.Fatalf("vaults bucket = %v, want only %s and its index", keys, existing.ID)
	}
	// The names of the failed request are free again.
	e.addVaults(t, testSub, "vault-a", "vault-c")
}

func TestAddVaultsSameNameInOtherSubscription(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	e.addVaults(t, otherSub, "vault-a")
}

func TestAddVaultsConcurrentSameNameOneWins(t *testing.T) {
	t.Parallel()
	e := setup(t)
	planes := []*control.Plane{e.plane, e.newPlane(t)} // two API processes
	const racers = 8
	var wg sync.WaitGroup
	errs := make([]error, racers)
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = planes[i%2].Vaults.AddVaults(testCtx(t), vaultReq(testSub, "contested", "other-"+string(rune('a'+i))+"-vault"))
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, control.ErrConflict):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d adds won, want exactly 1 (errors: %v)", wins, errs)
	}
	all, err := e.plane.Vaults.All(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 { // "contested" and the winner's other vault
		t.Fatalf("registry has %d vaults, want 2: %+v", len(all), all)
	}
}

func TestAddVaultsRepairsStaleIndex(t *testing.T) {
	t.Parallel()
	later := func(c *control.Config) { c.Now = func() time.Time { return time.Now().Add(time.Hour) } }
	e := setup(t, later)
	kv, err := e.js.KeyValue(testCtx(t), events.BucketVaults)
	if err != nil {
		t.Fatal(err)
	}
	// A process died after claiming the name and before writing the record.
	if _, err := kv.Create(testCtx(t), "byname."+testSub+".vault-a", []byte(events.NewID())); err != nil {
		t.Fatal(err)
	}
	e.addVaults(t, testSub, "vault-a")

	// Without the clock in the future, the same dangling entry is young and
	// is respected (its owner may still be writing the record).
	e2 := setup(t)
	kv2, _ := e2.js.KeyValue(testCtx(t), events.BucketVaults)
	if _, err := kv2.Create(testCtx(t), "byname."+testSub+".vault-a", []byte(events.NewID())); err != nil {
		t.Fatal(err)
	}
	_, err = e2.plane.Vaults.AddVaults(testCtx(t), vaultReq(testSub, "vault-a"))
	wantErr(t, err, control.ErrConflict)
}

func TestResolve(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.addVaults(t, testSub, "vault-a", "shared")
	b := e.addVaults(t, otherSub, "shared")
	tests := []struct {
		ref     string
		wantID  string
		wantErr error
		wantMsg string
	}{
		{ref: a[0].ID, wantID: a[0].ID},
		{ref: strings.ToUpper(a[0].ID), wantID: a[0].ID},
		{ref: "vault-a::" + testSub, wantID: a[0].ID},
		{ref: "VAULT-A::" + testSub, wantID: a[0].ID},
		{ref: "vault-a", wantID: a[0].ID},
		{ref: "shared::" + otherSub, wantID: b[0].ID},
		{ref: "shared", wantErr: control.ErrInvalid, wantMsg: "shared::" + otherSub},
		{ref: "nope", wantErr: control.ErrNotFound},
		{ref: "vault-a::" + otherSub, wantErr: control.ErrNotFound},
		{ref: events.NewID(), wantErr: control.ErrNotFound},
		{ref: "not a name!", wantErr: control.ErrNotFound},
		{ref: "::", wantErr: control.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			v, err := e.plane.Vaults.Resolve(testCtx(t), tt.ref)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr == nil && v.ID != tt.wantID {
				t.Errorf("Resolve(%q) = %s, want %s", tt.ref, v.ID, tt.wantID)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not list %q", err, tt.wantMsg)
			}
		})
	}
}

func TestListVaults(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a", "vault-b", "vault-c")
	e.addVaults(t, otherSub, "vault-a")
	tests := []struct {
		name      string
		q         control.VaultQuery
		wantTotal int
		wantLen   int
	}{
		{"default page", control.VaultQuery{}, 4, 4},
		{"limit", control.VaultQuery{Limit: 2}, 4, 2},
		{"skip", control.VaultQuery{Skip: 3}, 4, 1},
		{"skip past end", control.VaultQuery{Skip: 10}, 4, 0},
		{"all", control.VaultQuery{Limit: events.LimitAll}, 4, 4},
		{"by name", control.VaultQuery{Name: "VAULT-A"}, 2, 2},
		{"by qualified name", control.VaultQuery{Name: "vault-a::" + otherSub}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := e.plane.Vaults.List(testCtx(t), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != tt.wantTotal || len(p.Resources) != tt.wantLen {
				t.Errorf("total %d, %d resources; want %d, %d", p.Total, len(p.Resources), tt.wantTotal, tt.wantLen)
			}
		})
	}
	empty := setup(t)
	p, err := empty.plane.Vaults.List(testCtx(t), control.VaultQuery{})
	if err != nil || p.Total != 0 || p.Resources == nil || p.Limit != events.DefaultLimit {
		t.Errorf("empty list = %+v, %v", p, err)
	}
}

func TestListVaultsFiltersAndSorts(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *control.Config) { c.Connections = []string{testConn, "conn-b"} })
	add := func(req control.AddVaultsRequest) events.Vault {
		t.Helper()
		vs, err := e.plane.Vaults.AddVaults(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return vs[0]
	}
	a := add(vaultReq(testSub, "kv-a")) // westeurope
	b := vaultReq(testSub, "kv-b")
	b.Vaults[0].Location, b.Vaults[0].AzureVaultID = "East US", armID(testSub, "vaults", "kv-b")
	vb := add(b)
	c := vaultReq(otherSub, "kv-c")
	c.Connection = "conn-b"
	vc := add(c)
	p := vaultReq(testSub, "pool-d")
	p.Vaults[0].Type, p.Vaults[0].Properties = events.VaultTypeManagedHSM, control.VaultProperties{HsmURI: "https://pool-d.managedhsm.azure.net/"}
	vd := add(p)
	ids := func(vs []events.Vault) []string {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = v.Name
		}
		return out
	}
	tests := []struct {
		name string
		q    control.VaultQuery
		want []string
	}{
		{"newest first by default", control.VaultQuery{}, []string{vd.Name, vc.Name, vb.Name, a.Name}},
		{"oldest first", control.VaultQuery{Sort: "createdAt"}, []string{a.Name, vb.Name, vc.Name, vd.Name}},
		{"by name", control.VaultQuery{Sort: "name"}, []string{a.Name, vb.Name, vc.Name, vd.Name}},
		{"by name descending", control.VaultQuery{Sort: "-name"}, []string{vd.Name, vc.Name, vb.Name, a.Name}},
		{"last updated first", control.VaultQuery{Sort: "-updatedAt", Limit: 2}, []string{vd.Name, vc.Name}},
		{"subscription", control.VaultQuery{SubscriptionID: strings.ToUpper(otherSub)}, []string{vc.Name}},
		{"connection", control.VaultQuery{Connection: "CONN-B"}, []string{vc.Name}},
		{"location without spaces", control.VaultQuery{Location: "eastus"}, []string{vb.Name}},
		{"location with spaces", control.VaultQuery{Location: "West Europe", Sort: "name"}, []string{a.Name, vc.Name, vd.Name}},
		{"azure_vault_id", control.VaultQuery{AzureVaultID: strings.ToLower(vb.AzureVaultID)}, []string{vb.Name}},
		{"type", control.VaultQuery{Type: "microsoft.keyvault/managedhsms"}, []string{vd.Name}},
		{"type vaults", control.VaultQuery{Type: events.VaultTypeVault, Sort: "name"}, []string{a.Name, vb.Name, vc.Name}},
		{"name and subscription", control.VaultQuery{Name: "kv-c", SubscriptionID: testSub}, []string{}},
		{"qualified name and type", control.VaultQuery{Name: "pool-d::" + testSub, Type: events.VaultTypeManagedHSM}, []string{vd.Name}},
		{"skip and limit after filter", control.VaultQuery{SubscriptionID: testSub, Sort: "name", Skip: 1, Limit: 1}, []string{vb.Name}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := e.plane.Vaults.List(testCtx(t), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page.Resources); !slices.Equal(got, tt.want) {
				t.Fatalf("vaults %v, want %v", got, tt.want)
			}
			for _, v := range page.Resources {
				if v.IsManagedHSM() && v.Properties == nil {
					t.Errorf("page vault %s lacks its properties", v.Name)
				}
			}
		})
	}
	for _, q := range []control.VaultQuery{{Sort: "size"}, {Type: "Microsoft.Storage/storageAccounts"}} {
		_, err := e.plane.Vaults.List(testCtx(t), q)
		wantErr(t, err, control.ErrInvalid)
	}
}

func TestRemoveVault(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := e.addVaults(t, testSub, "vault-a")[0]
	got, err := e.plane.Vaults.Remove(testCtx(t), v.ID)
	if err != nil || got.ID != v.ID {
		t.Fatalf("Remove = %+v, %v", got, err)
	}
	_, err = e.plane.Vaults.Get(testCtx(t), v.ID)
	wantErr(t, err, control.ErrNotFound)
	_, err = e.plane.Vaults.Remove(testCtx(t), v.ID)
	wantErr(t, err, control.ErrNotFound)
	if keys := e.keys(t, events.BucketLocks); len(keys) != 0 {
		t.Errorf("locks left behind: %v", keys)
	}
	// The name can be registered again.
	e.addVaults(t, testSub, "vault-a")
}

func TestRemoveVaultLockedByJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := e.addVaults(t, testSub, "vault-a")[0]
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	// The job's workers skip the vault; the removal does not wait for it.
	got, err := e.plane.Vaults.Remove(testCtx(t), v.ID)
	if err != nil || got.ID != v.ID || got.Removing {
		t.Fatalf("Remove of a vault in a job = %+v, %v", got, err)
	}
	_, err = e.plane.Vaults.Get(testCtx(t), v.ID)
	wantErr(t, err, control.ErrNotFound)
	if got := e.get(t, events.BucketLocks, v.ID); got != job.ID {
		t.Errorf("lock = %q, want the job's %q until the job ends", got, job.ID)
	}
	// The name is free: the vault can be added again, under a new id.
	again := e.addVaults(t, testSub, "vault-a")[0]
	if again.ID == v.ID {
		t.Fatal("the vault added again has its old id")
	}
}

func TestRemoveFinishesARemovalCutShort(t *testing.T) {
	t.Parallel()
	e := setup(t)
	vs := e.addVaults(t, testSub, "vault-a", "vault-b")
	// A removal that died after marking the vault: the mark is stored.
	kv, err := e.js.KeyValue(testCtx(t), events.BucketVaults)
	if err != nil {
		t.Fatal(err)
	}
	marked := vs[0]
	marked.Removing = true
	raw, _ := json.Marshal(marked)
	if _, err := kv.Put(testCtx(t), marked.ID, raw); err != nil {
		t.Fatal(err)
	}
	t.Run("a job naming it is refused", func(t *testing.T) {
		_, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "tester")
		var ce *control.ConflictError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "is being removed") {
			t.Fatalf("Create = %v, want a conflict saying the vault is being removed", err)
		}
	})
	t.Run("synchronize_all leaves it out", func(t *testing.T) {
		job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{SynchronizeAll: true}, "tester")
		if err != nil {
			t.Fatal(err)
		}
		if job.VaultTotal != 1 || len(job.Vaults) != 1 || job.Vaults[0].VaultID != vs[1].ID {
			t.Fatalf("job covers %d vaults: %+v", job.VaultTotal, job.Vaults)
		}
	})
	t.Run("removing it again finishes the removal", func(t *testing.T) {
		if _, err := e.plane.Vaults.Remove(testCtx(t), marked.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.plane.Vaults.Get(testCtx(t), marked.ID)
		wantErr(t, err, control.ErrNotFound)
	})
}

func TestMalformedIDsAreNotFound(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, id := range []string{"", "x", "../../etc", "11111111-2222-3333-4444-55555555555z", "byname.x.y", "*", ">"} {
		_, err := e.plane.Vaults.Get(testCtx(t), id)
		wantErr(t, err, control.ErrNotFound)
		_, err = e.plane.Jobs.Get(testCtx(t), id)
		wantErr(t, err, control.ErrNotFound)
		_, err = e.plane.Jobs.Cancel(testCtx(t), id)
		wantErr(t, err, control.ErrNotFound)
	}
}

// TestListVaultsPagesWithoutHoldingTheRegistry: a deep page of an
// unfiltered list is the same slice a full sort gives, while the list keeps
// only skip+limit vaults at a time; limit -1 is capped.
func TestListVaultsPagesWithoutHoldingTheRegistry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var all []events.Vault
	for start := 0; start < 2500; start += 1000 {
		var names []string
		for i := start; i < min(2500, start+1000); i++ {
			names = append(names, fmt.Sprintf("kv-%05d", i))
		}
		all = append(all, e.addVaults(t, testSub, names...)...)
	}
	slices.SortFunc(all, func(a, b events.Vault) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.QualifiedName(), b.QualifiedName())
	})
	page, err := e.plane.Vaults.List(testCtx(t), control.VaultQuery{Skip: 1500, Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 2500 || len(page.Resources) != 7 {
		t.Fatalf("total %d, %d resources", page.Total, len(page.Resources))
	}
	for i, v := range page.Resources {
		if v.ID != all[1500+i].ID {
			t.Fatalf("resource %d is %s, want %s", i, v.QualifiedName(), all[1500+i].QualifiedName())
		}
	}
	page, err = e.plane.Vaults.List(testCtx(t), control.VaultQuery{Limit: events.LimitAll})
	if err != nil || page.Limit != control.MaxVaultsLimit || len(page.Resources) != control.MaxVaultsLimit || page.Total != 2500 {
		t.Fatalf("limit -1: limit %d, %d resources, total %d (%v)", page.Limit, len(page.Resources), page.Total, err)
	}
}

func ptr[T any](v T) *T { return &v }

// armID is the ARM resource id of a vault ("vaults") or pool ("managedHSMs").
func armID(sub, kind, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/" + kind + "/" + name
}

func TestAddVaultsARMObjects(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var req control.AddVaultsRequest
	body := `{"connection":"` + testConn + `","subscription_id":"` + testSub + `","cloud_key_backup_limit":5,"vaults":[
	  {"id":"` + armID(testSub, "vaults", "kv-arm") + `","name":"kv-arm","type":"microsoft.keyvault/VAULTS","location":"westeurope",
	   "tags":{"env":"prod"},"systemData":{"createdBy":"ops@example.com","createdByType":"User","createdAt":"2024-01-02T03:04:05Z"},
	   "properties":{"tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47","sku":{"family":"A","name":"standard"},"vaultUri":"https://kv-arm.vault.azure.net/",
	     "enabledForDeployment":false,"enableSoftDelete":true,"softDeleteRetentionInDays":90,"enableRbacAuthorization":true,"createMode":null,
	     "provisioningState":"Succeeded","publicNetworkAccess":"Enabled","networkAcls":{"bypass":"AzureServices","defaultAction":"Allow","ipRules":[],"virtualNetworkRules":[]},
	     "accessPolicies":[]}},
	  {"id":"` + armID(testSub, "managedHSMs", "pool-1") + `","name":"pool-1","type":"Microsoft.KeyVault/managedHSMs","location":"westeurope",
	   "sku":{"family":"B","name":"Standard_B1"},"identity":{"type":"None"},"tags":null,
	   "properties":{"tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47","hsmUri":"https://pool-1.managedhsm.azure.net/","initialAdminObjectIds":["00000000-0000-0000-0000-000000000001"],
	     "enableSoftDelete":true,"softDeleteRetentionInDays":90,"enablePurgeProtection":false,"statusMessage":"The Managed HSM is provisioned and ready to use.",
	     "provisioningState":"Succeeded","regions":[],"securityDomainProperties":{"activationStatus":"Active","activationStatusMessage":"Your HSM has been activated."}}}]}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	vs, err := e.plane.Vaults.AddVaults(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a vault keeps its type, resource id and properties", func(t *testing.T) {
		v := vs[0]
		if v.Type != events.VaultTypeVault || v.AzureVaultID != armID(testSub, "vaults", "kv-arm") || v.VaultURI != "https://kv-arm.vault.azure.net/" ||
			v.CloudKeyBackupLimit != 5 || v.Tags["env"] != "prod" {
			t.Fatalf("vault %+v", v)
		}
		var props map[string]any
		if err := json.Unmarshal(v.Properties, &props); err != nil {
			t.Fatal(err)
		}
		if props["vaultUri"] != v.VaultURI || props["softDeleteRetentionInDays"] != 90.0 || props["enabledForDeployment"] != false {
			t.Fatalf("properties %s", v.Properties)
		}
		for _, absent := range []string{"createMode", "accessPolicies"} { // null and empty are absent
			if _, ok := props[absent]; ok {
				t.Errorf("properties keep %s: %s", absent, v.Properties)
			}
		}
	})
	t.Run("a Managed HSM pool is registered by its hsmUri", func(t *testing.T) {
		p := vs[1]
		if p.Type != events.VaultTypeManagedHSM || !p.IsManagedHSM() || p.VaultURI != "https://pool-1.managedhsm.azure.net/" || p.Tags != nil {
			t.Fatalf("pool %+v", p)
		}
		got, err := e.plane.Vaults.Get(testCtx(t), p.ID)
		if err != nil || got.Type != events.VaultTypeManagedHSM || string(got.Properties) != string(p.Properties) {
			t.Fatalf("Get = %+v %v", got, err)
		}
		if task := got.ForTask(); task.Properties != nil || task.Tags != nil || task.Type != events.VaultTypeManagedHSM || task.VaultURI != p.VaultURI {
			t.Fatalf("ForTask = %+v", task)
		}
	})
	t.Run("an emulator's pool needs no public suffix", func(t *testing.T) {
		r := vaultReq(testSub, "pool-emu")
		r.Vaults[0].Type = "Microsoft.KeyVault/managedHSMs"
		r.Vaults[0].Properties = control.VaultProperties{HsmURI: "https://pool-emu.managedhsm.localhost:8443/"}
		if _, err := e.plane.Vaults.AddVaults(testCtx(t), r); err != nil {
			t.Fatal(err)
		}
		r = vaultReq(testSub, "pool-ip")
		r.Vaults[0].Type = "Microsoft.KeyVault/managedHSMs"
		r.Vaults[0].Properties = control.VaultProperties{VaultURI: "https://127.0.0.1:9443"}
		if _, err := e.plane.Vaults.AddVaults(testCtx(t), r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an undocumented property is refused by name", func(t *testing.T) {
		var bad control.AddVaultsRequest
		err := json.Unmarshal([]byte(`{"vaults":[{"name":"x","properties":{"vaultUri":"https://x.vault.azure.net/","colour":"red"}}]}`), &bad)
		if err == nil || !strings.Contains(err.Error(), `unknown field "colour"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPatchVault(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *control.Config) {
		c.LookupConnection = func(_ context.Context, name string) (control.ConnectionInfo, bool, error) {
			switch strings.ToLower(name) {
			case testConn:
				return control.ConnectionInfo{Name: testConn, Cloud: "AzureCloud"}, true, nil
			case "china":
				return control.ConnectionInfo{Name: "china", Cloud: "AzureChinaCloud"}, true, nil
			case "public2":
				return control.ConnectionInfo{Name: "public2", Cloud: "AzureCloud"}, true, nil
			case "gov":
				return control.ConnectionInfo{Name: "gov", Cloud: "AzureUSGovernment"}, true, nil
			case "stack":
				return control.ConnectionInfo{Name: "stack", Cloud: "AzureStack", KeyVaultDNSSuffix: "vault.local.azurestack.external"}, true, nil
			}
			return control.ConnectionInfo{}, false, nil
		}
	})
	v := e.addVaults(t, testSub, "kv-patch")[0]
	for _, other := range []string{"china", "gov", "stack"} {
		t.Run("refuses a connection of a cloud the vault's host is not in: "+other, func(t *testing.T) {
			_, err := e.plane.Vaults.Patch(testCtx(t), v.ID, control.VaultPatch{Connection: ptr(other)})
			wantErr(t, err, control.ErrInvalid)
			if !strings.Contains(err.Error(), "kv-patch.vault.azure.net is not a vault") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("moves the vault to another connection of its cloud", func(t *testing.T) {
		got, err := e.plane.Vaults.Patch(testCtx(t), v.ID, control.VaultPatch{Connection: ptr("PUBLIC2"), CloudKeyBackupLimit: ptr(7)})
		if err != nil || got.Connection != "public2" || got.Cloud != "AzureCloud" || got.CloudKeyBackupLimit != 7 || !got.UpdatedAt.After(v.UpdatedAt) {
			t.Fatalf("Patch = %+v, %v", got, err)
		}
		stored, err := e.plane.Vaults.Get(testCtx(t), v.ID)
		if err != nil || stored.Connection != "public2" || stored.CloudKeyBackupLimit != 7 || stored.VaultURI != v.VaultURI || !stored.CreatedAt.Equal(v.CreatedAt) {
			t.Fatalf("stored %+v, %v", stored, err)
		}
	})
	t.Run("0 removes the backup limit; the unchanged name may be sent", func(t *testing.T) {
		got, err := e.plane.Vaults.Patch(testCtx(t), v.ID, control.VaultPatch{CloudKeyBackupLimit: ptr(0), Name: ptr("kv-patch::" + testSub)})
		if err != nil || got.CloudKeyBackupLimit != 0 || got.Connection != "public2" {
			t.Fatalf("Patch = %+v, %v", got, err)
		}
	})
	for name, tc := range map[string]struct {
		id   string
		p    control.VaultPatch
		want error
		msg  string
	}{
		"unknown vault":      {events.NewID(), control.VaultPatch{CloudKeyBackupLimit: ptr(1)}, control.ErrNotFound, "not found"},
		"unknown connection": {v.ID, control.VaultPatch{Connection: ptr("nope")}, control.ErrInvalid, `connection "nope" is not a known connection`},
		"bad limit":          {v.ID, control.VaultPatch{CloudKeyBackupLimit: ptr(70000)}, control.ErrInvalid, "cloud_key_backup_limit"},
		"another name":       {v.ID, control.VaultPatch{Name: ptr("kv-other")}, control.ErrInvalid, "name cannot be changed"},
		"nothing":            {v.ID, control.VaultPatch{Connection: ptr("")}, control.ErrInvalid, "changes nothing"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			before, _ := e.plane.Vaults.Get(testCtx(t), v.ID)
			_, err := e.plane.Vaults.Patch(testCtx(t), tc.id, tc.p)
			wantErr(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if after, _ := e.plane.Vaults.Get(testCtx(t), v.ID); !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("a refused patch changed the vault")
			}
		})
	}
}
