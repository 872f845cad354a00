package akvemu

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

const day = 24 * 60 * 60

// generatedVaults expands SeedSpec into vault specs: names <prefix>-0001…, spread over
// the subscriptions, a share of them premium.
func generatedVaults(cfg Config) ([]VaultSpec, error) {
	s := cfg.Seed
	if s.Vaults == 0 && s.ManagedHSMs == 0 {
		return nil, nil
	}
	width := max(4, len(strconv.Itoa(s.Vaults)))
	if len(s.VaultPrefix)+1+width > 24 {
		return nil, fmt.Errorf("%w: vault prefix %q too long for %d vaults", ErrInvalidConfig, s.VaultPrefix, s.Vaults)
	}
	hsmWidth := max(4, len(strconv.Itoa(s.ManagedHSMs)))
	if s.ManagedHSMs > 0 && len(s.HSMPrefix)+1+hsmWidth > 24 {
		return nil, fmt.Errorf("%w: managed HSM prefix %q too long for %d pools", ErrInvalidConfig, s.HSMPrefix, s.ManagedHSMs)
	}
	seed := uint64(s.Seed) // #nosec G115 -- a PRNG seed: any bit pattern is valid, reinterpreting the sign is harmless
	subs := make([]string, s.Subscriptions)
	for i := range subs {
		subs[i] = derivedUUID("subscription", strconv.FormatInt(s.Seed, 10)+"/"+strconv.Itoa(i))
	}
	specs := make([]VaultSpec, s.Vaults)
	for i := range specs {
		sku := SKUStandard
		if chance(seed, uint64(i), 0x736b75) < s.HSMVaultFraction {
			sku = SKUPremium
		}
		specs[i] = VaultSpec{
			Name:           fmt.Sprintf("%s-%0*d", s.VaultPrefix, width, i+1),
			SubscriptionID: subs[i%len(subs)],
			SKU:            sku,
			Keys:           s.KeysPerVault,
		}
	}
	for i := range s.ManagedHSMs {
		specs = append(specs, VaultSpec{
			Name:           fmt.Sprintf("%s-%0*d", s.HSMPrefix, hsmWidth, i+1),
			Kind:           KindManagedHSM,
			SubscriptionID: subs[i%len(subs)],
			Keys:           s.KeysPerVault,
		})
	}
	return specs, nil
}

// Realistic vocabulary for generated keys.
var (
	seedPurposes = []string{"cmk", "app", "db", "storage", "tls", "signing", "backup", "api", "wrap", "tenant", "payments", "jwt"}
	seedEnvs     = []string{"prod", "staging", "dev", "test", "dr"}
	seedTeams    = []string{"platform", "payments", "identity", "data", "security", "web"}
	seedApps     = []string{"checkout", "ledger", "portal", "gateway", "reports", "billing", "search"}
)

// keyKind is one entry of the key type mix.
type keyKind struct {
	kty    string
	size   int
	crv    string
	weight int
}

var (
	standardMix = []keyKind{
		{KtyRSA, 2048, "", 55}, {KtyRSA, 3072, "", 10}, {KtyRSA, 4096, "", 10},
		{KtyEC, 256, CurveP256, 14}, {KtyEC, 384, CurveP384, 5}, {KtyEC, 521, CurveP521, 3}, {KtyEC, 256, CurveP256K, 3},
	}
	premiumMix = []keyKind{
		{KtyRSA, 2048, "", 25}, {KtyRSAHSM, 2048, "", 25}, {KtyRSAHSM, 3072, "", 8}, {KtyRSAHSM, 4096, "", 7},
		{KtyEC, 256, CurveP256, 10}, {KtyECHSM, 256, CurveP256, 10}, {KtyECHSM, 384, CurveP384, 5},
		{KtyECHSM, 521, CurveP521, 3}, {KtyECHSM, 256, CurveP256K, 3}, {KtyOctHSM, 256, "", 4},
	}
	// managedHSMMix holds HSM types only, with AES keys of every size.
	managedHSMMix = []keyKind{
		{KtyRSAHSM, 2048, "", 30}, {KtyRSAHSM, 3072, "", 10}, {KtyRSAHSM, 4096, "", 10},
		{KtyECHSM, 256, CurveP256, 12}, {KtyECHSM, 384, CurveP384, 6}, {KtyECHSM, 521, CurveP521, 4}, {KtyECHSM, 256, CurveP256K, 3},
		{KtyOctHSM, 256, "", 15}, {KtyOctHSM, 192, "", 4}, {KtyOctHSM, 128, "", 6},
	}
)

func pickKind(rng *rand.Rand, mix []keyKind) keyKind {
	total := 0
	for _, k := range mix {
		total += k.weight
	}
	n := rng.IntN(total)
	for _, k := range mix {
		if n < k.weight {
			return k
		}
		n -= k.weight
	}
	return mix[0]
}

// seedVaultKeys generates n keys into an empty vault, deterministically from the
// vault seed: a realistic mix of types and sizes, several versions, disabled and
// expired keys, tags and managed keys. Key material comes from the shared pool.
func seedVaultKeys(v *Vault, n int, s SeedSpec) error {
	if n == 0 {
		return nil
	}
	p, err := sharedPool()
	if err != nil {
		return err
	}
	s = s.withDefaults()
	rng := rand.New(rand.NewPCG(v.seed, 0x6b657973)) // #nosec G404 -- seeded PRNG so emulator test data is reproducible; not secrets
	epoch := s.Epoch.Unix()
	mixTable := standardMix
	switch {
	case v.kind == KindManagedHSM:
		mixTable = managedHSMMix
	case v.sku == SKUPremium:
		mixTable = premiumMix
	}
	width := max(5, len(strconv.Itoa(n)))
	entries := make([]*keyEntry, 0, n)
	var vid [16]byte
	newVersion := func() string {
		for i := 0; i < 16; i += 8 {
			u := rng.Uint64()
			for j := 0; j < 8; j++ {
				vid[i+j] = byte(u >> (8 * j)) // #nosec G115 -- takes byte j of u; truncation is the intent
			}
		}
		return hex.EncodeToString(vid[:])
	}
	for i := 0; i < n; i++ {
		// Pools hold no certificates, so no managed keys (the draw keeps the sequence).
		managed := rng.Float64() < s.ManagedFraction && v.kind != KindManagedHSM
		var name string
		kind := pickKind(rng, mixTable)
		if managed {
			name = fmt.Sprintf("cert-%s-%0*d", seedApps[rng.IntN(len(seedApps))], width, i)
			kind = keyKind{KtyRSA, 2048, "", 1}
			if v.sku == SKUPremium && rng.IntN(2) == 0 {
				kind.kty = KtyRSAHSM
			}
		} else {
			name = fmt.Sprintf("%s-%s-%0*d", seedPurposes[rng.IntN(len(seedPurposes))], seedEnvs[rng.IntN(len(seedEnvs))], width, i)
		}
		if rng.IntN(10) == 0 {
			name = strings.ToUpper(name[:1]) + name[1:]
		}
		ops := defaultOps(kind.kty)
		if rng.IntN(10) == 0 && keyFamily(kind.kty) == KtyRSA {
			ops = []string{"wrapKey", "unwrapKey"}
		} else if rng.IntN(10) == 0 && keyFamily(kind.kty) == KtyRSA {
			ops = []string{"sign", "verify"}
		}
		var tags []tag
		if rng.Float64() < s.TaggedFraction {
			m := map[string]string{"env": seedEnvs[rng.IntN(len(seedEnvs))]}
			if rng.IntN(2) == 0 {
				m["owner"] = "team-" + seedTeams[rng.IntN(len(seedTeams))]
			}
			if rng.IntN(3) == 0 {
				m["cost-center"] = "CC-" + strconv.Itoa(1000+rng.IntN(9000))
			}
			if rng.IntN(4) == 0 {
				m["app"] = seedApps[rng.IntN(len(seedApps))]
			}
			tags, _ = sortedTags(m)
		}
		versions := 1
		if s.VersionsPerKey > 1 && rng.IntN(10) >= 6 {
			versions = 2 + rng.IntN(s.VersionsPerKey-1)
		}
		e := &keyEntry{name: name, lname: lower(name), versions: make([]*keyVersion, 0, versions)}
		created := epoch - int64(30+rng.IntN(365))*day - int64(rng.IntN(day))
		for j := 0; j < versions; j++ {
			mat, err := p.pick(keyFamily(kind.kty), kind.size, kind.crv, rng.Uint64())
			if err != nil {
				return err
			}
			kv := &keyVersion{
				name: name, version: newVersion(), kty: kind.kty, size: kind.size, crv: kind.crv, mat: mat,
				ops: ops, enabled: true, created: created, updated: created, managed: managed, tags: tags,
			}
			if rng.IntN(5) == 0 {
				kv.updated = min(epoch, created+int64(1+rng.IntN(30))*day)
			}
			if managed {
				kv.nbf = created
				kv.exp = created + 365*day
			}
			e.versions = append(e.versions, kv)
			e.latest = kv
			created = min(epoch-day, created+int64(1+rng.IntN(60))*day)
		}
		latest := e.latest
		switch r := rng.Float64(); {
		case r < s.DisabledFraction:
			latest.enabled = false
		case r < s.DisabledFraction+s.ExpiredFraction:
			latest.exp = epoch - int64(1+rng.IntN(180))*day
			if latest.exp <= latest.created {
				latest.exp = latest.created + day
			}
		case r < s.DisabledFraction+s.ExpiredFraction+0.3 && !managed:
			latest.exp = epoch + int64(2*365+rng.IntN(4*365))*day
		}
		if !managed && rng.IntN(10) == 0 {
			latest.nbf = latest.created
		}
		slices.SortFunc(e.versions, func(a, b *keyVersion) int { return strings.Compare(a.version, b.version) })
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *keyEntry) int { return strings.Compare(a.lname, b.lname) })
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range entries {
		if v.keys[e.lname] != nil {
			return fmt.Errorf("%w: generated duplicate key name %s", ErrInvalidConfig, e.name)
		}
		v.keys[e.lname] = e
	}
	v.order = append(v.order, entries...)
	slices.SortFunc(v.order, func(a, b *keyEntry) int { return strings.Compare(a.lname, b.lname) })
	return nil
}
