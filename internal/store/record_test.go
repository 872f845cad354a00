package store

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// FuzzRecordCodec: every key record reads back as written from the
// compact binary form (hex, UUID and base64url strings packed, the kid
// derived when it can be), and decoding arbitrary bytes never panics.
func FuzzRecordCodec(f *testing.F) {
	r := makeKey(nil, testVaults(1)[0], "k1")
	f.Add(r.Name, r.Version, r.Kid, r.N, r.E, "env", "prod", r.RecoveryLevel, r.JobID, int64(r.Created), 2048, true, []byte{1, 2, 3})
	f.Add("Key-1", "ABCDEF", "https://x/keys/Key-1/ABCDEF", "AQAB=", "", "", "", "Custom", "0b6f3f9e-7a51-4c1e-9d55-0c1b2f0e9a11", int64(-1), 0, false, []byte{})
	f.Fuzz(func(t *testing.T, name, version, kid, n, e, tagK, tagV, recovery, jobID string, created int64, size int, flag bool, junk []byte) {
		in := r
		in.Name, in.Version, in.Kid, in.N, in.E, in.RecoveryLevel, in.JobID = name, version, kid, n, e, recovery, jobID
		in.Created, in.KeySize, in.Enabled, in.Gone, in.Managed = created, max(size, 0), flag, !flag, flag
		in.Tags = nil
		if tagK != "" {
			in.Tags = map[string]string{tagK: tagV}
		}
		in.FirstSeenAt = time.Unix(created, int64(size&0x3fffffff)%1e9).UTC()
		tp := tupleOf(&in)
		v := appendRecord(nil, &in, &tp, 7)
		got, err := decodeRecord(in.ID, v, func(ord uint32) (*vaultTuple, error) {
			if ord != 7 {
				t.Fatalf("ordinal %d, want 7", ord)
			}
			return &tp, nil
		})
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
		}
		// Corrupt input: an error or a record, never a panic.
		_, _ = decodeRecord(in.ID, junk, func(uint32) (*vaultTuple, error) { return &tp, nil })
		_, _ = decodeRecord(in.ID, append(v[:len(v)/2:len(v)/2], junk...), func(uint32) (*vaultTuple, error) { return &tp, nil })
	})
}

// TestRecordIsCompact pins the size of a typical 2048-bit RSA record.
func TestRecordIsCompact(t *testing.T) {
	r := makeKey(nil, testVaults(1)[0], "key-1")
	tp := tupleOf(&r)
	v := appendRecord(nil, &r, &tp, 1)
	if len(v) > 400 {
		t.Fatalf("a 2048-bit RSA key record takes %d bytes, want ≤ 400", len(v))
	}
	t.Logf("record: %d bytes", len(v))
}

// TestCorruptLengthsRefused checks that lengths and counts read from the
// file are range-checked before conversion (gosec G115): a string length
// beyond int or the buffer is ErrCorrupt, and a counter beyond int
// saturates instead of turning negative.
func TestCorruptLengthsRefused(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{
		binary.AppendUvarint(nil, math.MaxUint64),
		binary.AppendUvarint(nil, math.MaxInt64+1),
		append(binary.AppendUvarint(nil, 5), "abcd"...),
	} {
		if _, _, err := readString(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("readString(%x): err %v, want ErrCorrupt", b, err)
		}
	}
	s, rest, err := readString(append(binary.AppendUvarint(nil, 3), "abcd"...))
	if err != nil || string(s) != "abc" || string(rest) != "d" {
		t.Errorf("readString: %q %q %v", s, rest, err)
	}
	if got := counterInt(math.MaxUint64); got != math.MaxInt {
		t.Errorf("counterInt(MaxUint64) = %d, want MaxInt", got)
	}
	if got := counterInt(42); got != 42 {
		t.Errorf("counterInt(42) = %d", got)
	}
}
