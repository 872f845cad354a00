package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// A key record is stored in a compact binary form (see appendRecord)
// instead of JSON: the vault's fields are replaced by a vault ordinal (see
// vaultTuple), the key identifier by a flag when it is the vault's kid
// prefix + "/keys/" + name + "/" + version, hex and UUID strings by their
// bytes and base64url key material by its bytes. On a 2048-bit RSA key
// this is about a third of the JSON.

// recordVersion is the first byte of every stored record.
const recordVersion = 1

// Record flag bits.
const (
	flagEnabled = 1 << iota
	flagGone
	flagExportable
	flagManaged
	flagRawKid // the kid is stored in full, not derived
)

// String encodings of appendPacked.
const (
	packRaw  = 0 // uvarint length, bytes
	packHex  = 1 // uvarint length, bytes of a lowercase hex string
	packUUID = 2 // 16 bytes of a canonical lowercase UUID
	packB64  = 3 // uvarint length, bytes of an unpadded base64url string
)

// recoveryLevels are the recovery levels Azure reports, stored as their
// index + 1 (0: the string follows).
var recoveryLevels = []string{
	"Purgeable", "Recoverable+Purgeable", "Recoverable", "Recoverable+ProtectedSubscription",
	"CustomizedRecoverable+Purgeable", "CustomizedRecoverable", "CustomizedRecoverable+ProtectedSubscription",
}

// vaultTuple is the vault part of a key record, shared by all keys of a
// vault and stored once in the vaults bucket under an ordinal.
type vaultTuple struct {
	vaultID, vaultName, sub, cloud, region string
	// kidPrefix is the key identifier up to "/keys/" (the vault URI).
	kidPrefix string
}

func (t *vaultTuple) encode() []byte {
	var b []byte
	for _, s := range [...]string{t.vaultID, t.vaultName, t.sub, t.cloud, t.region, t.kidPrefix} {
		b = appendString(b, s)
	}
	return b
}

func decodeTuple(b []byte) (vaultTuple, error) {
	var t vaultTuple
	for _, p := range [...]*string{&t.vaultID, &t.vaultName, &t.sub, &t.cloud, &t.region, &t.kidPrefix} {
		s, rest, err := readString(b)
		if err != nil {
			return t, err
		}
		*p, b = string(s), rest
	}
	return t, nil
}

// tupleOf returns r's vault tuple.
func tupleOf(r *events.KeyRecord) vaultTuple {
	t := vaultTuple{vaultID: r.VaultID, vaultName: r.VaultName, sub: r.SubscriptionID, cloud: r.Cloud, region: r.Region}
	if i := strings.Index(r.Kid, "/keys/"); i >= 0 {
		t.kidPrefix = r.Kid[:i]
	}
	return t
}

// derivedKid is the kid a record of tuple t with this name and version
// has when it is not stored in full.
func derivedKid(t *vaultTuple, name, version string) string {
	return t.kidPrefix + "/keys/" + name + "/" + version
}

// keyHead is the indexed head of a stored record. Its slices alias the
// buffer it was decoded from (bbolt memory: valid only within the
// transaction).
type keyHead struct {
	ord                    uint32
	name                   []byte // as stored (case preserved)
	flags                  byte
	keySize                int64
	first, changed, synced []byte // time12
	rest                   []byte // the body after the head
}

func (h *keyHead) enabled() bool { return h.flags&flagEnabled != 0 }
func (h *keyHead) gone() bool    { return h.flags&flagGone != 0 }

// appendRecord appends the stored form of r, whose vault tuple is t
// under ordinal ord, to dst.
//
// head: version byte, uvarint ord, string name, flags byte, uvarint key
// size, time12 first seen, changed, synced;
// body: packed version, [string kid if flagRawKid], string kty, string
// crv, uvarint n + strings key ops, packed n, e, x, y, varint nbf, exp,
// created, updated, recovery level code [+ string], uvarint recoverable
// days, string HSM platform, uvarint n + (string, string) tags sorted by
// name, packed job id.
func appendRecord(dst []byte, r *events.KeyRecord, t *vaultTuple, ord uint32) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(ord))
	dst = appendString(dst, r.Name)
	flags := bit(r.Enabled, flagEnabled) | bit(r.Gone, flagGone) | bit(r.Exportable, flagExportable) | bit(r.Managed, flagManaged)
	rawKid := r.Kid != derivedKid(t, r.Name, r.Version)
	if rawKid {
		flags |= flagRawKid
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(max(r.KeySize, 0)))
	dst = appendTime12(dst, r.FirstSeenAt)
	dst = appendTime12(dst, r.ChangedAt)
	dst = appendTime12(dst, r.SyncedAt)

	dst = appendPacked(dst, r.Version)
	if rawKid {
		dst = appendString(dst, r.Kid)
	}
	dst = appendString(dst, r.Kty)
	dst = appendString(dst, r.Curve)
	dst = binary.AppendUvarint(dst, uint64(len(r.KeyOps)))
	for _, op := range r.KeyOps {
		dst = appendString(dst, op)
	}
	for _, s := range [...]string{r.N, r.E, r.X, r.Y} {
		dst = appendB64(dst, s)
	}
	for _, n := range [...]int64{r.NotBefore, r.Expires, r.Created, r.Updated} {
		dst = binary.AppendVarint(dst, n)
	}
	if i := slices.Index(recoveryLevels, r.RecoveryLevel); i >= 0 {
		dst = append(dst, byte(i+1)) // #nosec G115 -- i indexes the fixed recoveryLevels table (a few entries)
	} else {
		dst = appendString(append(dst, 0), r.RecoveryLevel)
	}
	dst = binary.AppendVarint(dst, int64(r.RecoverableDays))
	dst = appendString(dst, r.HSMPlatform)
	dst = binary.AppendUvarint(dst, uint64(len(r.Tags)))
	names := make([]string, 0, len(r.Tags))
	for k := range r.Tags {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		dst = appendString(appendString(dst, k), r.Tags[k])
	}
	return appendPacked(dst, r.JobID)
}

// decodeHead decodes the head of a stored record; the result aliases b.
func decodeHead(b []byte) (keyHead, error) {
	var h keyHead
	if len(b) == 0 || b[0] != recordVersion {
		return h, fmt.Errorf("%w: key record version", ErrCorrupt)
	}
	b = b[1:]
	ord, w := binary.Uvarint(b)
	if w <= 0 || ord > 1<<32-1 {
		return h, fmt.Errorf("%w: key record vault", ErrCorrupt)
	}
	h.ord = uint32(ord)
	var err error
	if h.name, b, err = readString(b[w:]); err != nil {
		return h, err
	}
	if len(b) < 1 {
		return h, fmt.Errorf("%w: key record flags", ErrCorrupt)
	}
	h.flags = b[0]
	size, w := binary.Uvarint(b[1:])
	if w <= 0 || len(b)-1-w < 36 || size > math.MaxInt64 {
		return h, fmt.Errorf("%w: key record size/times", ErrCorrupt)
	}
	h.keySize = int64(size)
	b = b[1+w:]
	h.first, h.changed, h.synced, h.rest = b[0:12], b[12:24], b[24:36], b[36:]
	return h, nil
}

// decodeRecord decodes a whole stored record of key id; tuple resolves a
// vault ordinal.
func decodeRecord(id string, v []byte, tuple func(uint32) (*vaultTuple, error)) (events.KeyRecord, error) {
	var r events.KeyRecord
	h, err := decodeHead(v)
	if err != nil {
		return r, err
	}
	t, err := tuple(h.ord)
	if err != nil {
		return r, err
	}
	r.ID = id
	r.VaultID, r.VaultName, r.SubscriptionID, r.Cloud, r.Region = t.vaultID, t.vaultName, t.sub, t.cloud, t.region
	r.Name = string(h.name)
	r.Enabled, r.Gone = h.enabled(), h.gone()
	r.Exportable, r.Managed = h.flags&flagExportable != 0, h.flags&flagManaged != 0
	r.KeySize = int(h.keySize)
	r.FirstSeenAt, r.ChangedAt, r.SyncedAt = time12(h.first), time12(h.changed), time12(h.synced)
	d := decoder{b: h.rest}
	r.Version = d.packed()
	if h.flags&flagRawKid != 0 {
		r.Kid = d.str()
	} else {
		r.Kid = derivedKid(t, r.Name, r.Version)
	}
	r.Kty, r.Curve = d.str(), d.str()
	if n := d.uvarint(); n > 0 && d.err == nil {
		r.KeyOps = make([]string, 0, min(n, 64))
		for range n {
			r.KeyOps = append(r.KeyOps, d.str())
			if d.err != nil {
				break
			}
		}
	}
	r.N, r.E, r.X, r.Y = d.packed(), d.packed(), d.packed(), d.packed()
	r.NotBefore, r.Expires, r.Created, r.Updated = d.varint(), d.varint(), d.varint(), d.varint()
	if c := d.byte(); c == 0 {
		r.RecoveryLevel = d.str()
	} else if int(c) <= len(recoveryLevels) {
		r.RecoveryLevel = recoveryLevels[c-1]
	} else {
		d.fail()
	}
	r.RecoverableDays = int(d.varint())
	r.HSMPlatform = d.str()
	if n := d.uvarint(); n > 0 && d.err == nil {
		r.Tags = make(map[string]string, min(n, 64))
		for range n {
			k := d.str()
			r.Tags[k] = d.str()
			if d.err != nil {
				break
			}
		}
	}
	r.JobID = d.packed()
	if d.err != nil {
		return r, fmt.Errorf("key %s: %w", id, d.err)
	}
	return r, nil
}

// appendString appends uvarint(len(s)) || s.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// readString reads appendString's encoding; the result aliases b.
func readString(b []byte) (s, rest []byte, err error) {
	u, w := binary.Uvarint(b)
	if w <= 0 || u > math.MaxInt {
		return nil, nil, fmt.Errorf("%w: string", ErrCorrupt)
	}
	if n := int(u); n <= len(b)-w {
		return b[w : w+n], b[w+n:], nil
	}
	return nil, nil, fmt.Errorf("%w: string", ErrCorrupt)
}

// appendPacked appends s as a UUID or hex string in its bytes when it is
// one (canonical lowercase form only, so decoding gives s back), else raw.
func appendPacked(dst []byte, s string) []byte {
	if id, ok := uuidBytes(s); ok {
		return append(append(dst, packUUID), id[:]...)
	}
	if len(s) > 0 && len(s)%2 == 0 && isLowerHex(s) {
		dst = binary.AppendUvarint(append(dst, packHex), uint64(len(s)/2))
		out, _ := hex.AppendDecode(dst, []byte(s)) // s is lowercase hex
		return out
	}
	return appendString(append(dst, packRaw), s)
}

// appendB64 appends s as its bytes when it is canonical unpadded
// base64url, else as appendPacked does.
func appendB64(dst []byte, s string) []byte {
	if s != "" {
		if raw, err := base64.RawURLEncoding.DecodeString(s); err == nil && base64.RawURLEncoding.EncodeToString(raw) == s {
			return appendString(append(dst, packB64), raw)
		}
	}
	return appendPacked(dst, s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// uuidBytes returns the bytes of a canonical lowercase UUID string.
func uuidBytes(s string) ([16]byte, bool) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if !isLowerHex(h) {
		return b, false
	}
	_, err := hex.Decode(b[:], []byte(h))
	return b, err == nil
}

// uuidString formats 16 bytes as a canonical lowercase UUID.
func uuidString(b []byte) string { return events.FormatUUID([16]byte(b)) }

// decoder reads a record body, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: key record body", ErrCorrupt)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	n, w := binary.Uvarint(d.b)
	if w <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[w:]
	return n
}

func (d *decoder) varint() int64 {
	n, w := binary.Varint(d.b)
	if w <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[w:]
	return n
}

func (d *decoder) bytes() []byte {
	s, rest, err := readString(d.b)
	if err != nil {
		d.fail()
		return nil
	}
	d.b = rest
	return s
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) packed() string {
	switch d.byte() {
	case packRaw:
		return d.str()
	case packHex:
		return hex.EncodeToString(d.bytes())
	case packB64:
		return base64.RawURLEncoding.EncodeToString(d.bytes())
	case packUUID:
		if len(d.b) < 16 {
			d.fail()
			return ""
		}
		s := uuidString(d.b[:16])
		d.b = d.b[16:]
		return s
	}
	d.fail()
	return ""
}

// Vault dictionary buckets:
//
//	vaults        ord (uint32 BE) -> vaultTuple encoding
//	vault_tuples  vaultTuple encoding -> ord
//	vault_ids     p(vault id) || ord -> empty
//	vault_names   p(vault name) || ord -> empty
//
// meta "vault_seq" holds the last ordinal given out. Ordinals are not
// reused; a vault removal deletes its tuples.
var (
	bucketVaults      = []byte("vaults")
	bucketVaultTuples = []byte("vault_tuples")
	bucketVaultIDs    = []byte("vault_ids")
	bucketVaultNames  = []byte("vault_names")
	metaVaultSeq      = []byte("vault_seq")
)

// vaultDict resolves and assigns vault ordinals within one transaction,
// caching what it read.
type vaultDict struct {
	tx     *bolt.Tx
	byOrd  map[uint32]*vaultTuple
	byEnc  map[string]uint32
	tuples *bolt.Bucket
}

func newVaultDict(tx *bolt.Tx) *vaultDict {
	return &vaultDict{tx: tx, byOrd: map[uint32]*vaultTuple{}, byEnc: map[string]uint32{}, tuples: tx.Bucket(bucketVaults)}
}

// tuple returns the tuple of ord.
func (d *vaultDict) tuple(ord uint32) (*vaultTuple, error) {
	if t, ok := d.byOrd[ord]; ok {
		return t, nil
	}
	v := d.tuples.Get(binary.BigEndian.AppendUint32(nil, ord))
	if v == nil {
		return nil, fmt.Errorf("%w: unknown vault ordinal %d", ErrCorrupt, ord)
	}
	t, err := decodeTuple(v)
	if err != nil {
		return nil, err
	}
	d.byOrd[ord] = &t
	return &t, nil
}

// ordinal returns the ordinal of t, assigning one (write transactions
// only) when t is new.
func (d *vaultDict) ordinal(t *vaultTuple) (uint32, error) {
	enc := t.encode()
	if o, ok := d.byEnc[string(enc)]; ok {
		return o, nil
	}
	byTuple := d.tx.Bucket(bucketVaultTuples)
	if v := byTuple.Get(enc); len(v) == 4 {
		o := binary.BigEndian.Uint32(v)
		d.byEnc[string(enc)] = o
		return o, nil
	}
	meta := d.tx.Bucket(bucketMeta)
	next := getCounter(meta, metaVaultSeq) + 1
	if next > 1<<32-1 {
		return 0, fmt.Errorf("%w: vault ordinals exhausted", ErrCorrupt)
	}
	o := uint32(next)
	ob := binary.BigEndian.AppendUint32(nil, o)
	for _, put := range []struct {
		b    []byte
		k, v []byte
	}{
		{bucketVaults, ob, enc},
		{bucketVaultTuples, enc, ob},
		{bucketVaultIDs, append(appendString(nil, t.vaultID), ob...), nil},
		{bucketVaultNames, append(appendString(nil, t.vaultName), ob...), nil},
		{bucketMeta, metaVaultSeq, binary.BigEndian.AppendUint64(nil, next)},
	} {
		if err := d.tx.Bucket(put.b).Put(put.k, put.v); err != nil {
			return 0, fmt.Errorf("store: vault dictionary: %w", err)
		}
	}
	d.byEnc[string(enc)] = o
	tc := *t
	d.byOrd[o] = &tc
	return o, nil
}

// ordsOf returns the ordinals listed under p(value) in a vault_ids or
// vault_names bucket.
func ordsOf(tx *bolt.Tx, bucket []byte, value string) []uint32 {
	var out []uint32
	p := appendString(nil, value)
	c := tx.Bucket(bucket).Cursor()
	for k, _ := c.Seek(p); k != nil && len(k) == len(p)+4 && string(k[:len(p)]) == string(p); k, _ = c.Next() {
		out = append(out, binary.BigEndian.Uint32(k[len(p):]))
	}
	return out
}

// bit returns b if on, else 0.
func bit(on bool, b byte) byte {
	if on {
		return b
	}
	return 0
}
