package connections_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/secrets"
)

func TestCRUD(t *testing.T) {
	e := setup(t)
	c, err := e.reg.Create(e.ctx, secretReq("prod"))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if c.ID == "" || c.Name != "prod" || c.URI != connections.URIPrefix+"prod-"+c.ID {
		t.Fatalf("created %+v", c)
	}
	if c.CloudName != azure.CloudPublic || len(c.Products) != 1 || c.Products[0] != "cckm" || !c.ClientSecretSet || c.CertificateSet {
		t.Fatalf("defaults not filled: %+v", c)
	}
	if c.CreatedAt.IsZero() || !c.UpdatedAt.Equal(c.CreatedAt) {
		t.Fatalf("times %v %v", c.CreatedAt, c.UpdatedAt)
	}
	for _, ref := range []string{c.ID, strings.ToUpper(c.ID), "prod", "PROD"} {
		got, err := e.reg.Get(e.ctx, ref)
		if err != nil || got.ID != c.ID {
			t.Fatalf("get %q: %+v, %v", ref, got, err)
		}
	}
	if _, err := e.reg.Get(e.ctx, "nope"); !errors.Is(err, connections.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := e.reg.Create(e.ctx, secretReq("PROD")); !errors.Is(err, connections.ErrConflict) {
		t.Fatalf("duplicate name (other case): %v", err)
	}

	// A connection resolves for the worker.
	ac, err := e.reg.Connection(e.ctx, "prod")
	if err != nil || ac.ClientSecret != testSecret || ac.Name != "prod" || ac.TenantID != testTenant {
		t.Fatalf("Connection: %+v %v", ac.Name, err)
	}

	// Patch: description and tenant change; the secret stays.
	desc, tenant := "changed", "contoso.onmicrosoft.com"
	p, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{Description: &desc, TenantID: &tenant})
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	if p.Description != desc || p.TenantID != tenant || !p.ClientSecretSet || !p.UpdatedAt.After(c.UpdatedAt) && !p.UpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("patched %+v", p)
	}
	// The worker sees the change on its next call (another process too).
	other := e.newRegistry(t, e.sealer)
	for _, r := range []*connections.Registry{e.reg, other} {
		ac, err = r.Connection(e.ctx, "prod")
		if err != nil || ac.TenantID != tenant || ac.ClientSecret != testSecret {
			t.Fatalf("Connection after patch: tenant %q, %v", ac.TenantID, err)
		}
	}
	newTenant := testTenant
	if _, err := other.Patch(e.ctx, "prod", connections.PatchRequest{TenantID: &newTenant}); err != nil {
		t.Fatal(err)
	}
	if ac, err = e.reg.Connection(e.ctx, "prod"); err != nil || ac.TenantID != testTenant {
		t.Fatalf("cached connection not refreshed: %q %v", ac.TenantID, err)
	}
	name := "other"
	if _, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{Name: &name}); !errors.Is(err, connections.ErrInvalid) {
		t.Fatalf("rename: %v", err)
	}
	bad := "AzureMars"
	if _, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{CloudName: &bad}); !errors.Is(err, connections.ErrInvalid) {
		t.Fatalf("bad cloud: %v", err)
	}

	// List: paging and filter.
	for i := range 4 {
		if _, err := e.reg.Create(e.ctx, secretReq(fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	pg, err := e.reg.List(e.ctx, connections.Query{Skip: 1, Limit: 2})
	if err != nil || pg.Total != 5 || len(pg.Resources) != 2 || pg.Skip != 1 || pg.Limit != 2 {
		t.Fatalf("list: %+v %v", pg, err)
	}
	if pg.Resources[0].Name != "c2" || pg.Resources[1].Name != "c1" {
		t.Fatalf("order: %s %s", pg.Resources[0].Name, pg.Resources[1].Name)
	}
	pg, err = e.reg.List(e.ctx, connections.Query{Name: "Prod", Limit: -1})
	if err != nil || pg.Total != 1 || pg.Resources[0].ID != c.ID {
		t.Fatalf("filter: %+v %v", pg, err)
	}
	if pg, err = e.reg.List(e.ctx, connections.Query{}); err != nil || pg.Limit != 10 || len(pg.Resources) != 5 {
		t.Fatalf("default limit: %+v %v", pg, err)
	}

	// Delete, then the name is free again.
	if _, err := e.reg.Delete(e.ctx, "prod"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := e.reg.Get(e.ctx, c.ID); !errors.Is(err, connections.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := e.reg.Connection(e.ctx, "prod"); !errors.Is(err, connections.ErrNotFound) {
		t.Fatalf("Connection of deleted: %v", err)
	}
	if _, err := e.reg.Delete(e.ctx, c.ID); !errors.Is(err, connections.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := e.reg.Create(e.ctx, secretReq("prod")); err != nil {
		t.Fatalf("recreate: %v", err)
	}
}

func TestUniqueNameUnderConcurrentCreate(t *testing.T) {
	e := setup(t)
	regs := []*connections.Registry{e.reg, e.newRegistry(t, e.sealer), e.newRegistry(t, e.sealer)}
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "shared"
			if i%2 == 1 {
				name = "SHARED"
			}
			_, errs[i] = regs[i%len(regs)].Create(e.ctx, secretReq(name))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, connections.ErrConflict):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates succeeded, want 1", ok)
	}
	pg, err := e.reg.List(e.ctx, connections.Query{Limit: -1})
	if err != nil || pg.Total != 1 {
		t.Fatalf("list: %+v %v", pg, err)
	}
}

// rawValues returns every value of the connections bucket.
func rawValues(t *testing.T, e *env) map[string][]byte {
	t.Helper()
	lister, err := e.kv.ListKeys(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k := range lister.Keys() {
		v, err := e.kv.Get(e.ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v.Value()
	}
	return out
}

func TestSecretsSealedAtRestAndNeverInView(t *testing.T) {
	e := setup(t)
	cert, key := testCert(t)
	sc, err := e.reg.Create(e.ctx, secretReq("sec"))
	if err != nil {
		t.Fatal(err)
	}
	creq := secretReq("cert")
	creq.CredentialType, creq.ClientSecret, creq.Certificate = azure.CredentialClientCertificate, "", string(cert)+string(key)
	cc, err := e.reg.Create(e.ctx, creq)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := keyMaterial(key)
	raw := rawValues(t, e)
	for _, id := range []string{sc.ID, cc.ID} {
		v, ok := raw[id]
		if !ok {
			t.Fatalf("no record %s in %v", id, raw)
		}
		if bytes.Contains(v, []byte(testSecret)) || bytes.Contains(v, []byte(keyBody)) || bytes.Contains(v, []byte("PRIVATE KEY")) {
			t.Fatalf("plaintext secret in KV record %s: %s", id, v)
		}
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatal(err)
		}
		field := "client_secret"
		if id == cc.ID {
			field = "certificate"
		}
		s, _ := m[field].(string)
		if kid, err := secrets.KeyID(s); err != nil || kid != "k1" {
			t.Fatalf("%s.%s = %q is not sealed under k1 (%v)", id, field, s, err)
		}
	}
	// The API view, as JSON, has neither the secret nor a secret field:
	// its certificate is the public certificate alone.
	for _, ref := range []string{sc.ID, cc.ID} {
		c, err := e.reg.Get(e.ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		if bytes.Contains(b, []byte(testSecret)) || bytes.Contains(b, []byte(keyBody)) || bytes.Contains(b, []byte("PRIVATE KEY")) ||
			bytes.Contains(b, []byte(`"client_secret":`)) {
			t.Fatalf("secret in API view: %s", b)
		}
		if ref == cc.ID && (!strings.HasPrefix(c.Certificate, "-----BEGIN CERTIFICATE-----") || len(c.CertificateThumbprint) != 40 || !c.ExternalCertificateUsed) {
			t.Fatalf("certificate view: %q thumbprint %q external %t", c.Certificate, c.CertificateThumbprint, c.ExternalCertificateUsed)
		}
	}
	pg, _ := e.reg.List(e.ctx, connections.Query{Limit: -1})
	if b, _ := json.Marshal(pg); bytes.Contains(b, []byte(testSecret)) || bytes.Contains(b, []byte(keyBody)) {
		t.Fatalf("secret in list: %s", b)
	}
	// Nor does the request's String form.
	if s := fmt.Sprint(secretReq("x")); strings.Contains(s, testSecret) {
		t.Fatalf("String leaks: %s", s)
	}
	// A sealed value moved to another record does not open (AAD binds it).
	var a, b map[string]any
	_ = json.Unmarshal(raw[sc.ID], &a)
	_ = json.Unmarshal(raw[cc.ID], &b)
	b["client_secret"] = a["client_secret"]
	b["credential_type"] = azure.CredentialClientSecret
	delete(b, "certificate")
	moved, _ := json.Marshal(b)
	if _, err := e.kv.Put(e.ctx, cc.ID, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Connection(e.ctx, "cert"); !errors.Is(err, connections.ErrCorrupt) || !errors.Is(err, secrets.ErrTampered) {
		t.Fatalf("moved secret opened: %v", err)
	}
}

// keyMaterial is the base64 body of a PEM private key (its first line).
func keyMaterial(keyPEM []byte) string {
	lines := strings.Split(string(keyPEM), "\n")
	return lines[1]
}

func TestPatchReseals(t *testing.T) {
	e := setup(t)
	c, err := e.reg.Create(e.ctx, secretReq("p"))
	if err != nil {
		t.Fatal(err)
	}
	before := sealedField(t, e, c.ID, "client_secret")
	desc := "no secret change"
	if _, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{Description: &desc}); err != nil {
		t.Fatal(err)
	}
	if got := sealedField(t, e, c.ID, "client_secret"); got != before {
		t.Fatalf("sealed secret rewritten by an unrelated patch")
	}
	newSecret := "another-Secret-Value-0123456789"
	if _, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{ClientSecret: &newSecret}); err != nil {
		t.Fatal(err)
	}
	after := sealedField(t, e, c.ID, "client_secret")
	if after == before || strings.Contains(after, newSecret) {
		t.Fatalf("secret not resealed: %q", after)
	}
	if ac, err := e.reg.Connection(e.ctx, "p"); err != nil || ac.ClientSecret != newSecret {
		t.Fatalf("new secret not effective: %v", err)
	}
	// Switching to a certificate drops the secret.
	cert, key := testCert(t)
	ct, pemStr := azure.CredentialClientCertificate, string(cert)+string(key)
	v, err := e.reg.Patch(e.ctx, "p", connections.PatchRequest{CredentialType: &ct, Certificate: &pemStr})
	if err != nil {
		t.Fatal(err)
	}
	if v.ClientSecretSet || !v.CertificateSet || sealedField(t, e, c.ID, "client_secret") != "" {
		t.Fatalf("after switching to a certificate: %+v", v)
	}
	if ac, err := e.reg.Connection(e.ctx, "p"); err != nil || ac.ClientSecret != "" || string(ac.CertificatePEM) != pemStr {
		t.Fatalf("certificate not effective: %v", err)
	}
	// Switching back without a secret is refused and changes nothing.
	st := azure.CredentialClientSecret
	if _, err := e.reg.Patch(e.ctx, "p", connections.PatchRequest{CredentialType: &st}); !errors.Is(err, connections.ErrInvalid) {
		t.Fatalf("switch without secret: %v", err)
	}
	if g, _ := e.reg.Get(e.ctx, "p"); g.CredentialType != azure.CredentialClientCertificate {
		t.Fatalf("failed patch changed the record: %+v", g)
	}
}

func sealedField(t *testing.T, e *env, id, field string) string {
	t.Helper()
	v, err := e.kv.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(v.Value(), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[field].(string)
	return s
}

func TestDeleteRefusedWhileVaultsReferToIt(t *testing.T) {
	e := setup(t)
	c, err := e.reg.Create(e.ctx, secretReq("used"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Create(e.ctx, secretReq("unused")); err != nil {
		t.Fatal(err)
	}
	v1 := e.addVault(t, "vault-b", "https://vault-b.vault.azure.net", "used")
	v2 := e.addVault(t, "vault-a", "https://vault-a.vault.azure.net", "USED")
	e.addVault(t, "vault-c", "https://vault-c.vault.azure.net", "elsewhere")
	_, err = e.reg.Delete(e.ctx, c.ID)
	var inUse *connections.InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, connections.ErrConflict) {
		t.Fatalf("delete in use: %v", err)
	}
	if want := []string{v2.QualifiedName(), v1.QualifiedName()}; fmt.Sprint(inUse.Vaults) != fmt.Sprint(want) {
		t.Fatalf("vaults %v, want %v", inUse.Vaults, want)
	}
	if !strings.Contains(err.Error(), v1.QualifiedName()) {
		t.Fatalf("message does not name the vault: %v", err)
	}
	if _, err := e.reg.Get(e.ctx, c.ID); err != nil {
		t.Fatalf("refused delete removed the connection: %v", err)
	}
	if _, err := e.reg.Delete(e.ctx, "unused"); err != nil {
		t.Fatalf("delete unused: %v", err)
	}
	// Once the vaults are gone, the delete goes through.
	for _, v := range []string{v1.ID, v2.ID} {
		if err := e.vaults.Delete(e.ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.reg.Delete(e.ctx, c.ID); err != nil {
		t.Fatalf("delete after vaults removed: %v", err)
	}
	if _, err := e.kv.Get(e.ctx, c.ID); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("record still there: %v", err)
	}
}

func TestReseal(t *testing.T) {
	e := setup(t)
	cert, key := testCert(t)
	if _, err := e.reg.Create(e.ctx, secretReq("a")); err != nil {
		t.Fatal(err)
	}
	creq := secretReq("b")
	creq.CredentialType, creq.ClientSecret, creq.Certificate = azure.CredentialClientCertificate, "", string(cert)+string(key)
	if _, err := e.reg.Create(e.ctx, creq); err != nil {
		t.Fatal(err)
	}
	mi := connections.CreateRequest{Settings: connections.Settings{Name: "c", CredentialType: azure.CredentialManagedIdentity}}
	if _, err := e.reg.Create(e.ctx, mi); err != nil {
		t.Fatal(err)
	}

	// Rotate: k2 first, k1 still in the ring.
	rotated := secrets.KeyRing{Current: "k2", Keys: map[string][]byte{"k1": e.ring.Keys["k1"]}}
	k2, _ := secrets.GenerateKey()
	rotated.Keys["k2"] = k2
	reg2 := e.newRegistry(t, newSealer(t, rotated))
	st, err := reg2.Reseal(e.ctx)
	if err != nil {
		t.Fatalf("reseal: %v", err)
	}
	if st != (connections.ResealStats{Connections: 3, Resealed: 2, Current: 1}) {
		t.Fatalf("stats %+v", st)
	}
	for _, raw := range rawValues(t, e) {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			continue // index entry
		}
		for _, f := range []string{"client_secret", "certificate"} {
			if s, ok := m[f].(string); ok {
				if kid, _ := secrets.KeyID(s); kid != "k2" {
					t.Fatalf("%s still under %q", f, kid)
				}
			}
		}
	}
	// Readable with a ring that only has the new key.
	only := newSealer(t, secrets.KeyRing{Current: "k2", Keys: map[string][]byte{"k2": k2}})
	reg3 := e.newRegistry(t, only)
	if c, err := reg3.Connection(e.ctx, "a"); err != nil || c.ClientSecret != testSecret {
		t.Fatalf("a under k2: %v", err)
	}
	if c, err := reg3.Connection(e.ctx, "b"); err != nil || string(c.CertificatePEM) != string(cert)+string(key) {
		t.Fatalf("b under k2: %v", err)
	}
	// Running again changes nothing.
	if st, err := reg2.Reseal(e.ctx); err != nil || st.Resealed != 0 || st.Current != 3 {
		t.Fatalf("second reseal: %+v %v", st, err)
	}
	// The old registry (ring without k2) cannot open, and says so.
	if _, err := e.reg.Connection(e.ctx, "a"); !errors.Is(err, connections.ErrCorrupt) || !errors.Is(err, secrets.ErrUnknownKey) {
		t.Fatalf("old ring: %v", err)
	}
	if st, err := e.reg.Reseal(e.ctx); !errors.Is(err, connections.ErrCorrupt) || st.Failed != 2 {
		t.Fatalf("reseal without the key: %+v %v", st, err)
	}
}
