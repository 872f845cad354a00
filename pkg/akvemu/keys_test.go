package akvemu_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestKeysCRUD(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "crud", SKU: akvemu.SKUPremium})
	c := newClient(t, e, v, nil)
	ctx := context.Background()
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()

	var firstVersion string
	t.Run("create returns the service's key bundle", func(t *testing.T) {
		before := time.Now().Truncate(time.Second)
		r, err := c.CreateKey(ctx, "Payments-Key", azkeys.CreateKeyParameters{
			Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr[int32](3072),
			Tags:          map[string]*string{"env": ptr("prod")},
			KeyAttributes: &azkeys.KeyAttributes{Expires: &exp},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		k := r.Key
		if got, want := string(*k.KID), v.URL()+"/keys/Payments-Key/"+k.KID.Version(); got != want {
			t.Errorf("kid = %s, want %s", got, want)
		}
		if !versionRE.MatchString(k.KID.Version()) {
			t.Errorf("version %q is not 32 lowercase hex", k.KID.Version())
		}
		if *k.Kty != azkeys.KeyTypeRSA || len(k.N)*8 != 3072 || len(k.E) == 0 {
			t.Errorf("kty %s, n %d bits", *k.Kty, len(k.N)*8)
		}
		if len(k.KeyOps) != 6 {
			t.Errorf("default RSA key_ops = %d, want 6", len(k.KeyOps))
		}
		a := r.Attributes
		if !*a.Enabled || a.Created.Before(before) || !a.Updated.Equal(*a.Created) || !a.Expires.Equal(exp) {
			t.Errorf("attributes %+v", a)
		}
		if *a.RecoveryLevel != "Recoverable+Purgeable" || *a.RecoverableDays != 90 || *a.Exportable {
			t.Errorf("recovery attributes %s %d %v", *a.RecoveryLevel, *a.RecoverableDays, *a.Exportable)
		}
		if *r.Tags["env"] != "prod" {
			t.Errorf("tags %v", r.Tags)
		}
		firstVersion = k.KID.Version()
	})

	t.Run("get latest with trailing slash and by version", func(t *testing.T) {
		latest, err := c.GetKey(ctx, "payments-key", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		byVersion, err := c.GetKey(ctx, "PAYMENTS-KEY", firstVersion, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *latest.Key.KID != *byVersion.Key.KID {
			t.Errorf("latest %s != version %s", *latest.Key.KID, *byVersion.Key.KID)
		}
	})

	t.Run("HSM keys report hsmPlatform and EC curves", func(t *testing.T) {
		r, err := c.CreateKey(ctx, "hsm-ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeECHSM), Curve: ptr(azkeys.CurveNameP256K)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r.Key.Crv != azkeys.CurveNameP256K || len(r.Key.X) != 32 || len(r.Key.Y) != 32 || r.Attributes.HSMPlatform == nil {
			t.Errorf("EC-HSM key: crv %v x %d y %d hsm %v", *r.Key.Crv, len(r.Key.X), len(r.Key.Y), r.Attributes.HSMPlatform)
		}
		if got := r.Key.KeyOps; len(got) != 2 {
			t.Errorf("EC key_ops %v", got)
		}
		oct, err := c.CreateKey(ctx, "hsm-oct", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeySize: ptr[int32](256)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *oct.Key.Kty != azkeys.KeyTypeOctHSM || len(oct.Key.K) != 0 {
			t.Errorf("oct-HSM key %v exposes k=%d bytes", *oct.Key.Kty, len(oct.Key.K))
		}
	})

	t.Run("update with and without version sets updated", func(t *testing.T) {
		r, err := c.UpdateKey(ctx, "payments-key", "", azkeys.UpdateKeyParameters{
			KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)},
			Tags:          map[string]*string{"owner": ptr("team-a")},
			KeyOps:        []*azkeys.KeyOperation{ptr(azkeys.KeyOperationSign), ptr(azkeys.KeyOperationVerify)},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r.Attributes.Enabled || len(r.Tags) != 1 || *r.Tags["owner"] != "team-a" || len(r.Key.KeyOps) != 2 {
			t.Errorf("update not applied: enabled %v tags %v ops %v", *r.Attributes.Enabled, r.Tags, r.Key.KeyOps)
		}
		r2, err := c.UpdateKey(ctx, "payments-key", firstVersion, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(true)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !*r2.Attributes.Enabled || r2.Attributes.Updated.Before(*r2.Attributes.Created) {
			t.Errorf("versioned update: %+v", r2.Attributes)
		}
	})

	t.Run("rotate adds a version listed in version order", func(t *testing.T) {
		r, err := c.RotateKey(ctx, "payments-key", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Key.KID.Version() == firstVersion || *r.Key.Kty != azkeys.KeyTypeRSA || len(r.Key.N)*8 != 3072 {
			t.Errorf("rotated key %s", *r.Key.KID)
		}
		var versions []string
		pager := c.NewListKeyPropertiesVersionsPager("payments-key", nil)
		for pager.More() {
			p, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range p.Value {
				versions = append(versions, k.KID.Version())
			}
		}
		if len(versions) != 2 || !slices.IsSorted(versions) {
			t.Errorf("versions %v, want 2 sorted", versions)
		}
	})

	t.Run("versions of a missing key is an empty list", func(t *testing.T) {
		p, err := c.NewListKeyPropertiesVersionsPager("no-such-key", nil).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Value) != 0 || p.NextLink != nil {
			t.Errorf("got %d items, nextLink %v", len(p.Value), p.NextLink)
		}
	})

	t.Run("import RSA and EC public material", func(t *testing.T) {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.ImportKey(ctx, "imported-rsa", azkeys.ImportKeyParameters{
			HSM: ptr(true),
			Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeRSA), N: rk.N.Bytes(), E: big.NewInt(int64(rk.E)).Bytes(), D: rk.D.Bytes()},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r.Key.Kty != azkeys.KeyTypeRSAHSM || new(big.Int).SetBytes(r.Key.N).Cmp(rk.N) != 0 || len(r.Key.D) != 0 {
			t.Errorf("imported RSA: kty %s, modulus kept %v, private exposed %d", *r.Key.Kty, new(big.Int).SetBytes(r.Key.N).Cmp(rk.N) == 0, len(r.Key.D))
		}
		ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ek.PublicKey.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		raw := pub.Bytes()
		x, y := raw[1:49], raw[49:]
		r2, err := c.ImportKey(ctx, "imported-ec", azkeys.ImportKeyParameters{
			Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(azkeys.CurveNameP384), X: x, Y: y},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r2.Key.Kty != azkeys.KeyTypeEC || string(r2.Key.X) != string(x) {
			t.Errorf("imported EC %s", *r2.Key.Kty)
		}
	})

	t.Run("errors carry service codes and messages", func(t *testing.T) {
		_, err := c.GetKey(ctx, "missing-key", "", nil)
		re := responseError(t, err)
		if re.StatusCode != http.StatusNotFound || re.ErrorCode != "KeyNotFound" ||
			!strings.Contains(re.Error(), "A key with (name/id) missing-key was not found in this key vault.") {
			t.Errorf("missing key: %d %s %v", re.StatusCode, re.ErrorCode, err)
		}
		_, err = c.CreateKey(ctx, "bad-size", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr[int32](1024)}, nil)
		if re := responseError(t, err); re.StatusCode != http.StatusBadRequest || re.ErrorCode != "BadParameter" {
			t.Errorf("bad size: %d %s", re.StatusCode, re.ErrorCode)
		}
		std := addVault(t, e, akvemu.VaultSpec{Name: "crud-standard"})
		_, err = newClient(t, e, std, nil).CreateKey(ctx, "hsm", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSAHSM)}, nil)
		if re := responseError(t, err); re.StatusCode != http.StatusBadRequest {
			t.Errorf("HSM key in standard vault: %d", re.StatusCode)
		}
	})
}

func TestWireShapes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "shapes", Keys: 30})
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	token := vaultToken(t, cred)
	name := v.Keys()[0].Name

	t.Run("get key is compact JSON with unpadded base64url and integer times", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys/"+name+"/?api-version=2025-07-01", token, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("content type %q", ct)
		}
		if strings.ContainsAny(string(body), "\n =") {
			t.Errorf("body is not compact unpadded JSON: %s", body)
		}
		var doc struct {
			Key        map[string]any `json:"key"`
			Attributes map[string]any `json:"attributes"`
		}
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"created", "updated"} {
			if _, err := doc.Attributes[f].(json.Number).Int64(); err != nil {
				t.Errorf("%s is not an integer: %v", f, doc.Attributes[f])
			}
		}
		if !strings.HasPrefix(doc.Key["kid"].(string), v.URL()+"/keys/") {
			t.Errorf("kid %v", doc.Key["kid"])
		}
	})

	t.Run("api-version is checked like the service", func(t *testing.T) {
		for _, ver := range []string{"7.4", "7.5", "7.6", "2025-07-01"} {
			if resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version="+ver, token, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("api-version %s: %d %s", ver, resp.StatusCode, body)
			}
		}
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.0", token, nil)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("x-ms-error-code") != "BadParameter" {
			t.Errorf("api-version 7.0: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("maxresults outside 1-25 is a BadParameter", func(t *testing.T) {
		for _, mr := range []string{"0", "26", "x"} {
			resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.6&maxresults="+mr, token, nil)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":"BadParameter"`) {
				t.Errorf("maxresults=%s: %d %s", mr, resp.StatusCode, body)
			}
		}
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.6&maxresults=10", token, nil)
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink *string           `json:"nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, err)
		}
		if len(page.Value) != 10 || page.NextLink == nil || !strings.HasPrefix(*page.NextLink, v.URL()+"/keys?") ||
			!strings.Contains(*page.NextLink, "$skiptoken=") || !strings.Contains(*page.NextLink, "maxresults=10") {
			t.Errorf("page of %d, nextLink %v", len(page.Value), page.NextLink)
		}
	})

	t.Run("last page says nextLink null", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.6&maxresults=25", token, nil)
		var page struct {
			NextLink string `json:"nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
			t.Fatal(err)
		}
		_, last := rawDo(t, e, http.MethodGet, page.NextLink, token, nil)
		if !strings.HasSuffix(string(last), `],"nextLink":null}`) {
			t.Errorf("last page: %s", last)
		}
	})
}

func TestSoftDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "softdel", RecoverableDays: 7})
	c := newClient(t, e, v, nil)
	ctx := context.Background()
	if _, err := c.CreateKey(ctx, "doomed", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}

	t.Run("delete returns recovery information", func(t *testing.T) {
		d, err := c.DeleteKey(ctx, "doomed", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *d.RecoveryID != v.URL()+"/deletedkeys/doomed" || d.ScheduledPurgeDate.Sub(*d.DeletedDate) != 7*24*time.Hour {
			t.Errorf("recovery id %s, purge %v deleted %v", *d.RecoveryID, d.ScheduledPurgeDate, d.DeletedDate)
		}
		if *d.Attributes.RecoveryLevel != "CustomizedRecoverable+Purgeable" || *d.Attributes.RecoverableDays != 7 {
			t.Errorf("recovery level %s days %d", *d.Attributes.RecoveryLevel, *d.Attributes.RecoverableDays)
		}
		if _, err := c.GetKey(ctx, "doomed", "", nil); responseError(t, err).StatusCode != http.StatusNotFound {
			t.Errorf("deleted key still readable")
		}
	})

	t.Run("deleted keys are listed and readable", func(t *testing.T) {
		p, err := c.NewListDeletedKeyPropertiesPager(nil).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Value) != 1 || p.Value[0].KID.Name() != "doomed" || p.Value[0].RecoveryID == nil || p.Value[0].DeletedDate == nil {
			t.Fatalf("deleted list %+v", p.Value)
		}
		d, err := c.GetDeletedKey(ctx, "doomed", nil)
		if err != nil || *d.Key.Kty != azkeys.KeyTypeEC {
			t.Fatalf("get deleted: %v", err)
		}
	})

	t.Run("the name cannot be reused while deleted", func(t *testing.T) {
		_, err := c.CreateKey(ctx, "doomed", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil)
		if re := responseError(t, err); re.StatusCode != http.StatusConflict || re.ErrorCode != "Conflict" {
			t.Errorf("reuse: %d %s", re.StatusCode, re.ErrorCode)
		}
	})

	t.Run("recover restores the key", func(t *testing.T) {
		r, err := c.RecoverDeletedKey(ctx, "doomed", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Key.KID.Name() != "doomed" {
			t.Errorf("recovered %s", *r.Key.KID)
		}
		if _, err := c.GetKey(ctx, "doomed", "", nil); err != nil {
			t.Errorf("get after recover: %v", err)
		}
	})

	t.Run("purge removes it for good", func(t *testing.T) {
		if _, err := c.DeleteKey(ctx, "doomed", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PurgeDeletedKey(ctx, "doomed", nil); err != nil {
			t.Fatal(err)
		}
		_, err := c.GetDeletedKey(ctx, "doomed", nil)
		if re := responseError(t, err); re.StatusCode != http.StatusNotFound || re.ErrorCode != "KeyNotFound" {
			t.Errorf("after purge: %d %s", re.StatusCode, re.ErrorCode)
		}
		if _, err := c.CreateKey(ctx, "doomed", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil); err != nil {
			t.Errorf("name not reusable after purge: %v", err)
		}
	})

	t.Run("purge protection forbids purging", func(t *testing.T) {
		pv := addVault(t, e, akvemu.VaultSpec{Name: "protected", PurgeProtection: true})
		pc := newClient(t, e, pv, nil)
		if _, err := pc.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.DeleteKey(ctx, "k", nil); err != nil {
			t.Fatal(err)
		}
		_, err := pc.PurgeDeletedKey(ctx, "k", nil)
		if re := responseError(t, err); re.StatusCode != http.StatusForbidden {
			t.Errorf("purge with protection: %d", re.StatusCode)
		}
	})
}

func TestMutationsBetweenListings(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "mutate", Keys: 60})
	c := newClient(t, e, v, nil)
	ctx := context.Background()

	first := map[string]azkeys.KeyProperties{}
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Value {
			first[k.KID.Name()] = *k
		}
	}
	keys := v.Keys()
	updated, deleted := keys[3].Name, keys[10].Name
	mutatedAt := time.Now().Truncate(time.Second)
	if _, err := v.UpdateKey(updated, "", akvemu.KeyUpdate{Tags: map[string]string{"rotated": "yes"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKey(ctx, keys[5].Name, "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateKey("brand-new", akvemu.KeySpec{Kty: akvemu.KtyRSA}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeleteKey(deleted); err != nil {
		t.Fatal(err)
	}

	second := map[string]azkeys.KeyProperties{}
	pager = c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Value {
			second[k.KID.Name()] = *k
		}
	}

	t.Run("an updated key shows a newer updated time", func(t *testing.T) {
		for _, name := range []string{updated, keys[5].Name} {
			before, after := first[name].Attributes.Updated, second[name].Attributes.Updated
			if !after.After(*before) || after.Before(mutatedAt) {
				t.Errorf("%s: updated %v -> %v (mutation at %v)", name, before, after, mutatedAt)
			}
		}
		if *second[updated].Tags["rotated"] != "yes" || *second[keys[5].Name].Attributes.Enabled {
			t.Errorf("changes not visible")
		}
	})
	t.Run("an added key appears with created equal updated", func(t *testing.T) {
		k, ok := second["brand-new"]
		if !ok || !k.Attributes.Created.Equal(*k.Attributes.Updated) || k.Attributes.Created.Before(mutatedAt) {
			t.Errorf("brand-new: %v %+v", ok, k.Attributes)
		}
	})
	t.Run("a deleted key disappears and the rest is unchanged", func(t *testing.T) {
		if _, ok := second[deleted]; ok {
			t.Errorf("%s still listed", deleted)
		}
		if len(second) != len(first) {
			t.Errorf("listing sizes %d -> %d, want equal (one added, one deleted)", len(first), len(second))
		}
		for name, k := range first {
			if name == updated || name == deleted || name == keys[5].Name {
				continue
			}
			if !second[name].Attributes.Updated.Equal(*k.Attributes.Updated) {
				t.Errorf("%s changed without a mutation", name)
			}
		}
	})
}
