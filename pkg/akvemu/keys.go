package akvemu

import (
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// KeySpec describes a key to create (Go API, admin API, spec files).
type KeySpec struct {
	// Kty is RSA, RSA-HSM, EC, EC-HSM or oct-HSM (required).
	Kty string `json:"kty" yaml:"kty"`
	// KeySize in bits: RSA 2048 (default), 3072 or 4096; oct-HSM 128, 192 or 256 (default).
	KeySize int `json:"key_size,omitempty" yaml:"key_size"`
	// Curve for EC keys: P-256 (default), P-384, P-521 or P-256K.
	Curve string `json:"crv,omitempty" yaml:"crv"`
	// KeyOps defaults to the service defaults for the key type.
	KeyOps []string `json:"key_ops,omitempty" yaml:"key_ops"`
	// Tags of the key (at most 15).
	Tags map[string]string `json:"tags,omitempty" yaml:"tags"`
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled"`
	// NotBefore (nbf) and Expires (exp) are optional.
	NotBefore *time.Time `json:"nbf,omitempty" yaml:"nbf"`
	Expires   *time.Time `json:"exp,omitempty" yaml:"exp"`
	// Exportable marks the private key exportable.
	Exportable bool `json:"exportable,omitempty" yaml:"exportable"`
	// Managed marks a key that backs a certificate.
	Managed bool `json:"managed,omitempty" yaml:"managed"`
}

// KeyUpdate changes a key version's mutable properties; nil fields stay unchanged.
type KeyUpdate struct {
	Enabled   *bool             `json:"enabled,omitempty"` // attributes.enabled
	NotBefore *time.Time        `json:"nbf,omitempty"`     // attributes.nbf (zero time clears)
	Expires   *time.Time        `json:"exp,omitempty"`     // attributes.exp (zero time clears)
	KeyOps    []string          `json:"key_ops,omitempty"` // replaces key_ops
	Tags      map[string]string `json:"tags,omitempty"`    // replaces all tags (empty map clears)
}

// Key is one key version as the service would return it, for field-by-field comparison.
type Key struct {
	Name            string            `json:"name"`                  // key name as first created
	Version         string            `json:"version"`               // 32 lowercase hex digits
	KID             string            `json:"kid"`                   // https://127.0.0.1:PORT/keys/{name}/{version}
	Kty             string            `json:"kty"`                   // RSA, RSA-HSM, EC, EC-HSM or oct-HSM
	KeySize         int               `json:"key_size,omitempty"`    // bits (curve size for EC)
	Curve           string            `json:"crv,omitempty"`         // EC curve
	KeyOps          []string          `json:"key_ops"`               // key_ops
	N               []byte            `json:"n,omitempty"`           // RSA modulus
	E               []byte            `json:"e,omitempty"`           // RSA public exponent
	X               []byte            `json:"x,omitempty"`           // EC x coordinate
	Y               []byte            `json:"y,omitempty"`           // EC y coordinate
	Enabled         bool              `json:"enabled"`               // attributes.enabled
	NotBefore       *time.Time        `json:"nbf,omitempty"`         // attributes.nbf
	Expires         *time.Time        `json:"exp,omitempty"`         // attributes.exp
	Created         time.Time         `json:"created"`               // attributes.created (seconds)
	Updated         time.Time         `json:"updated"`               // attributes.updated (seconds)
	RecoveryLevel   string            `json:"recoveryLevel"`         // attributes.recoveryLevel
	RecoverableDays int               `json:"recoverableDays"`       // attributes.recoverableDays
	Exportable      bool              `json:"exportable"`            // attributes.exportable
	HSMPlatform     string            `json:"hsmPlatform,omitempty"` // attributes.hsmPlatform (HSM keys only)
	Tags            map[string]string `json:"tags,omitempty"`        // tags
	Managed         bool              `json:"managed,omitempty"`     // backs a certificate
}

// DeletedKey is a soft-deleted key (its latest version) with deletion information.
type DeletedKey struct {
	Key
	RecoveryID         string    `json:"recoveryId"`         // https://…/deletedkeys/{name}
	DeletedDate        time.Time `json:"deletedDate"`        // when it was deleted
	ScheduledPurgeDate time.Time `json:"scheduledPurgeDate"` // deletedDate + recoverableDays
}

// hsmPlatformValue is reported for HSM-backed keys.
const hsmPlatformValue = "2"

// vaultAttrs are the vault-wide values rendered into every key's attributes.
type vaultAttrs struct {
	recoveryLevel   string
	recoverableDays int
}

type tag struct{ k, v string }

// keyVersion is one immutable key version. Updates replace the pointer (copy on
// write), so readers can render outside the vault lock. The JSON tails are rendered
// lazily and cached.
type keyVersion struct {
	name, version string
	kty           string
	size          int
	crv           string
	mat           *material
	ops           []string
	enabled       bool
	nbf, exp      int64 // 0 = unset
	created       int64
	updated       int64
	exportable    bool
	managed       bool
	sent          atomic.Uint32 // expiry events sent for this version and exp (sentNearExpiry, sentExpired)
	tags          []tag         // sorted by key

	bundleTail atomic.Pointer[[]byte] // after `{"key":{"kid":"` + base
	itemTail   atomic.Pointer[[]byte] // after `{"kid":"` + base, kid without version
	vitemTail  atomic.Pointer[[]byte] // after `{"kid":"` + base, kid with version
}

// keyEntry is a key name with its versions sorted by version id.
type keyEntry struct {
	name, lname string
	versions    []*keyVersion
	latest      *keyVersion
}

func (e *keyEntry) find(version string) *keyVersion {
	if version == "" {
		return e.latest
	}
	i := sort.Search(len(e.versions), func(i int) bool { return e.versions[i].version >= version })
	if i < len(e.versions) && e.versions[i].version == version {
		return e.versions[i]
	}
	return nil
}

func (e *keyEntry) insert(kv *keyVersion) {
	i := sort.Search(len(e.versions), func(i int) bool { return e.versions[i].version >= kv.version })
	e.versions = slices.Insert(e.versions, i, kv)
	e.latest = kv
}

func (e *keyEntry) replace(old, kv *keyVersion) {
	for i, x := range e.versions {
		if x == old {
			e.versions[i] = kv
		}
	}
	if e.latest == old {
		e.latest = kv
	}
}

// Bits of keyVersion.sent.
const (
	sentNearExpiry uint32 = 1 << iota
	sentExpired
)

// markSent records that an expiry event was sent; false when it already was.
func (kv *keyVersion) markSent(bit uint32) bool {
	for {
		old := kv.sent.Load()
		if old&bit != 0 {
			return false
		}
		if kv.sent.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// clone copies the mutable fields into a fresh version (the caches start empty).
func (kv *keyVersion) clone() *keyVersion {
	return &keyVersion{
		name: kv.name, version: kv.version, kty: kv.kty, size: kv.size, crv: kv.crv, mat: kv.mat,
		ops: kv.ops, enabled: kv.enabled, nbf: kv.nbf, exp: kv.exp, created: kv.created, updated: kv.updated,
		exportable: kv.exportable, managed: kv.managed, tags: kv.tags,
	}
}

func (kv *keyVersion) appendAttributes(dst []byte, va *vaultAttrs) []byte {
	dst = append(dst, `"attributes":{"enabled":`...)
	if kv.enabled {
		dst = append(dst, "true"...)
	} else {
		dst = append(dst, "false"...)
	}
	if kv.nbf != 0 {
		dst = append(dst, `,"nbf":`...)
		dst = appendInt(dst, kv.nbf)
	}
	if kv.exp != 0 {
		dst = append(dst, `,"exp":`...)
		dst = appendInt(dst, kv.exp)
	}
	dst = append(dst, `,"created":`...)
	dst = appendInt(dst, kv.created)
	dst = append(dst, `,"updated":`...)
	dst = appendInt(dst, kv.updated)
	dst = append(dst, `,"recoveryLevel":`...)
	dst = appendJSONString(dst, va.recoveryLevel)
	dst = append(dst, `,"recoverableDays":`...)
	dst = appendInt(dst, int64(va.recoverableDays))
	if kv.exportable {
		dst = append(dst, `,"exportable":true`...)
	} else {
		dst = append(dst, `,"exportable":false`...)
	}
	if isHSM(kv.kty) {
		dst = append(dst, `,"hsmPlatform":"`+hsmPlatformValue+`"`...)
	}
	return append(dst, '}')
}

func (kv *keyVersion) appendTagsManaged(dst []byte) []byte {
	if len(kv.tags) > 0 {
		dst = append(dst, `,"tags":{`...)
		for i, t := range kv.tags {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, t.k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, t.v)
		}
		dst = append(dst, '}')
	}
	if kv.managed {
		dst = append(dst, `,"managed":true`...)
	}
	return dst
}

// bundle returns the KeyBundle JSON after `{"key":{"kid":"<base>`. withSize adds
// key_size to a symmetric key's JWK, as api-version 2026-01-01-preview does (the
// service returns no size for them before); that form is not cached.
func (kv *keyVersion) bundle(va *vaultAttrs, withSize bool) []byte {
	withSize = withSize && keyFamily(kv.kty) == "oct"
	if p := kv.bundleTail.Load(); p != nil && !withSize {
		return *p
	}
	b := make([]byte, 0, 176+len(kv.mat.jwk))
	b = append(b, "/keys/"...)
	b = append(b, kv.name...)
	b = append(b, '/')
	b = append(b, kv.version...)
	b = append(b, `","kty":`...)
	b = appendJSONString(b, kv.kty)
	b = append(b, `,"key_ops":[`...)
	for i, op := range kv.ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, op)
	}
	b = append(b, ']')
	b = append(b, kv.mat.jwk...)
	if withSize {
		b = append(b, `,"key_size":`...)
		b = appendInt(b, int64(kv.size))
	}
	b = append(b, "},"...)
	b = kv.appendAttributes(b, va)
	b = kv.appendTagsManaged(b)
	b = append(b, '}')
	if !withSize {
		kv.bundleTail.Store(&b)
	}
	return b
}

// item returns the list item JSON after `{"kid":"<base>`; withVersion selects the
// versions-listing form.
func (kv *keyVersion) item(va *vaultAttrs, withVersion bool) []byte {
	cache := &kv.itemTail
	if withVersion {
		cache = &kv.vitemTail
	}
	if p := cache.Load(); p != nil {
		return *p
	}
	b := make([]byte, 0, 256)
	b = append(b, "/keys/"...)
	b = append(b, kv.name...)
	if withVersion {
		b = append(b, '/')
		b = append(b, kv.version...)
	}
	b = append(b, `",`...)
	b = kv.appendAttributes(b, va)
	b = kv.appendTagsManaged(b)
	b = append(b, '}')
	cache.Store(&b)
	return b
}

// toKey converts to the exported form with kid rooted at base.
func (kv *keyVersion) toKey(base string, va *vaultAttrs) Key {
	k := Key{
		Name: kv.name, Version: kv.version, KID: base + "/keys/" + kv.name + "/" + kv.version,
		Kty: kv.kty, KeySize: kv.size, Curve: kv.crv, KeyOps: slices.Clone(kv.ops),
		N: kv.mat.n, E: kv.mat.e, X: kv.mat.x, Y: kv.mat.y,
		Enabled: kv.enabled, Created: time.Unix(kv.created, 0).UTC(), Updated: time.Unix(kv.updated, 0).UTC(),
		RecoveryLevel: va.recoveryLevel, RecoverableDays: va.recoverableDays, Exportable: kv.exportable,
		Managed: kv.managed,
	}
	if isHSM(kv.kty) {
		k.HSMPlatform = hsmPlatformValue
	}
	if kv.nbf != 0 {
		t := time.Unix(kv.nbf, 0).UTC()
		k.NotBefore = &t
	}
	if kv.exp != 0 {
		t := time.Unix(kv.exp, 0).UTC()
		k.Expires = &t
	}
	if len(kv.tags) > 0 {
		k.Tags = make(map[string]string, len(kv.tags))
		for _, t := range kv.tags {
			k.Tags[t.k] = t.v
		}
	}
	return k
}

// checkKty refuses key types the store does not hold: managed HSM pools hold only
// HSM-protected keys; standard vaults hold no HSM-protected keys.
func checkKty(kty string, kind Kind, sku SKU) error {
	switch {
	case kind == KindManagedHSM && !isHSM(kty):
		return badParamInner("Invalid kty value: "+kty+". Managed HSM only supports HSM-protected keys (RSA-HSM, EC-HSM, oct-HSM).", "KeyTypeNotSupported")
	case kind != KindManagedHSM && isHSM(kty) && sku != SKUPremium:
		return badParam(fmt.Sprintf("Key type '%s' is not supported by vaults with the standard SKU. Use a premium vault for HSM-protected keys.", kty))
	}
	return nil
}

// maxTags is the service limit on tags per object.
const maxTags = 15

func sortedTags(m map[string]string) ([]tag, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > maxTags {
		return nil, badParam(fmt.Sprintf("The number of tags (%d) exceeds the maximum of %d.", len(m), maxTags))
	}
	ts := make([]tag, 0, len(m))
	for k, v := range m {
		if k == "" || len(k) > 512 || len(v) > 256 {
			return nil, badParam("Tag names must be 1-512 characters and tag values at most 256 characters.")
		}
		ts = append(ts, tag{k, v})
	}
	slices.SortFunc(ts, func(a, b tag) int {
		switch {
		case a.k < b.k:
			return -1
		case a.k > b.k:
			return 1
		}
		return 0
	})
	return ts, nil
}

func validateOps(ops []string) ([]string, error) {
	for _, op := range ops {
		if !validOps[op] {
			return nil, badParam(fmt.Sprintf("Invalid key operation: '%s'.", op))
		}
	}
	return slices.Clone(ops), nil
}

func unixOrZero(t *time.Time) int64 {
	if t == nil || t.IsZero() {
		return 0
	}
	return t.Unix()
}

// normalizeSpec checks a KeySpec against the vault's kind and SKU and fills defaults.
func normalizeSpec(spec KeySpec, kind Kind, sku SKU) (KeySpec, error) {
	switch spec.Kty {
	case KtyRSA, KtyRSAHSM:
		if spec.KeySize == 0 {
			spec.KeySize = 2048
		}
		if spec.KeySize != 2048 && spec.KeySize != 3072 && spec.KeySize != 4096 {
			return spec, badParam(fmt.Sprintf("The key size %d is not supported. Supported RSA key sizes are 2048, 3072 and 4096.", spec.KeySize))
		}
		spec.Curve = ""
	case KtyEC, KtyECHSM:
		if spec.Curve == "" {
			spec.Curve = CurveP256
		}
		if curveSize(spec.Curve) == 0 {
			return spec, badParam(fmt.Sprintf("The curve '%s' is not supported. Supported curves are P-256, P-384, P-521 and P-256K.", spec.Curve))
		}
		spec.KeySize = curveSize(spec.Curve)
	case KtyOctHSM:
		if spec.KeySize == 0 {
			spec.KeySize = 256
		}
		if spec.KeySize != 128 && spec.KeySize != 192 && spec.KeySize != 256 {
			return spec, badParam(fmt.Sprintf("The key size %d is not supported for oct-HSM keys. Supported sizes are 128, 192 and 256.", spec.KeySize))
		}
		spec.Curve = ""
	case "":
		return spec, badParam("The parameter 'kty' is required.")
	default:
		// Software symmetric keys ("oct") exist nowhere: the service's answer.
		return spec, badParamInner("Invalid kty value: "+spec.Kty, "KeyTypeNotSupported")
	}
	if err := checkKty(spec.Kty, kind, sku); err != nil {
		return spec, err
	}
	if spec.KeyOps == nil {
		spec.KeyOps = defaultOps(spec.Kty)
	}
	return spec, nil
}
