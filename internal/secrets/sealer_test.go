package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/akvsync/akvsync/internal/keyring"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func ring(current string, kids ...string) KeyRing {
	r := KeyRing{Current: current, Keys: map[string][]byte{}}
	for i, k := range kids {
		r.Keys[k] = key(byte(i + 1))
	}
	return r
}

func mustSealer(t *testing.T, r KeyRing) *Sealer {
	t.Helper()
	s, err := NewSealer(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustSealer(t, ring("k1", "k1"))
	for _, pt := range [][]byte{nil, []byte("client-secret"), bytes.Repeat([]byte{0xff}, 10000)} {
		sealed, err := s.Seal(pt, []byte("conn-1/client_secret"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1:k1:") {
			t.Fatalf("sealed = %.20s", sealed)
		}
		if len(pt) > 4 && strings.Contains(sealed, string(pt)) {
			t.Fatal("plaintext visible")
		}
		got, err := s.Open(sealed, []byte("conn-1/client_secret"))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
	a, _ := s.Seal([]byte("x"), nil)
	b, _ := s.Seal([]byte("x"), nil)
	if a == b {
		t.Fatal("two seals of the same plaintext are equal (nonce reuse)")
	}
}

func TestOpenRejects(t *testing.T) {
	s := mustSealer(t, ring("k1", "k1", "k2"))
	aad := []byte("conn-1/client_secret")
	sealed, err := s.Seal([]byte("s3cr3t"), aad)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.SplitN(sealed, ":", 3)[2]
	raw, _ := base64.RawURLEncoding.DecodeString(data)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return "v1:k1:" + base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name   string
		sealed string
		aad    []byte
		want   error
	}{
		{name: "wrong aad", sealed: sealed, aad: []byte("conn-2/client_secret"), want: ErrTampered},
		{name: "missing aad", sealed: sealed, aad: nil, want: ErrTampered},
		{name: "flipped nonce bit", sealed: flip(0), aad: aad, want: ErrTampered},
		{name: "flipped ciphertext bit", sealed: flip(nonceSize), aad: aad, want: ErrTampered},
		{name: "flipped tag bit", sealed: flip(len(raw) - 1), aad: aad, want: ErrTampered},
		{name: "key id swapped to another known key", sealed: "v1:k2:" + data, aad: aad, want: ErrTampered},
		{name: "unknown key id", sealed: "v1:k9:" + data, aad: aad, want: ErrUnknownKey},
		{name: "truncated", sealed: "v1:k1:" + data[:10], aad: aad, want: ErrMalformed},
		{name: "other version", sealed: "v2:k1:" + data, aad: aad, want: ErrMalformed},
		{name: "not base64url", sealed: "v1:k1:" + data + "!", aad: aad, want: ErrMalformed},
		{name: "newline inside the data", sealed: "v1:k1:" + data[:10] + "\n" + data[10:], aad: aad, want: ErrMalformed},
		{name: "trailing newline", sealed: sealed + "\n", aad: aad, want: ErrMalformed},
		{name: "no key id", sealed: "v1:" + data, aad: aad, want: ErrMalformed},
		{name: "plaintext", sealed: "s3cr3t", aad: aad, want: ErrMalformed},
		{name: "empty", sealed: "", aad: aad, want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Open(tt.sealed, tt.aad)
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("Open = %q, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	aad := []byte("conn-7/private_key")
	old := mustSealer(t, ring("old", "old"))
	sealedOld, err := old.Seal([]byte("pem bytes"), aad)
	if err != nil {
		t.Fatal(err)
	}

	// New key in front: it seals, the old one still opens.
	both := mustSealer(t, KeyRing{Current: "new", Keys: map[string][]byte{"new": key(9), "old": key(1)}})
	if !both.NeedsReseal(sealedOld) {
		t.Fatal("old value does not need a reseal")
	}
	if got, err := both.Open(sealedOld, aad); err != nil || string(got) != "pem bytes" {
		t.Fatalf("old value during rotation: %q %v", got, err)
	}
	resealed, err := both.Reseal(sealedOld, aad)
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := KeyID(resealed); kid != "new" || both.NeedsReseal(resealed) {
		t.Fatalf("resealed under %q", kid)
	}
	if again, err := both.Reseal(resealed, aad); err != nil || again != resealed {
		t.Fatalf("reseal of a current value changed it: %v", err)
	}
	if _, err := both.Reseal(sealedOld, []byte("other")); !errors.Is(err, ErrTampered) {
		t.Fatalf("reseal with wrong aad: %v", err)
	}

	// Old key retired: the resealed value opens, the old one cannot.
	newOnly := mustSealer(t, KeyRing{Current: "new", Keys: map[string][]byte{"new": key(9)}})
	if got, err := newOnly.Open(resealed, aad); err != nil || string(got) != "pem bytes" {
		t.Fatalf("resealed value: %q %v", got, err)
	}
	if _, err := newOnly.Open(sealedOld, aad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old value after retirement: %v", err)
	}
}

func TestCloseZeroesKeys(t *testing.T) {
	r := ring("k1", "k1")
	s, err := NewSealer(r)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := s.Seal([]byte("x"), nil)
	held := s.keys["k1"]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held, make([]byte, KeySize)) {
		t.Fatal("key not zeroed")
	}
	if !bytes.Equal(r.Keys["k1"], key(1)) {
		t.Fatal("caller's key was modified (the sealer must copy)")
	}
	if _, err := s.Seal([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Seal after Close: %v", err)
	}
	if _, err := s.Open(sealed, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := mustSealer(t, ring("k1", "k1"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			pt := []byte{byte(i)}
			v, err := s.Seal(pt, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if got, err := s.Open(v, nil); err != nil || !bytes.Equal(got, pt) {
				t.Error(got, err)
			}
		})
	}
	wg.Wait()
}

func TestParseKeyRing(t *testing.T) {
	k1, k2 := key(1), key(2)
	tests := []struct {
		name    string
		in      string
		current string
		n       int
		wantErr bool
	}{
		{name: "single", in: keyring.Format("k1", k1), current: "k1", n: 1},
		{name: "first is current", in: keyring.Format("2026b", k2) + "," + keyring.Format("2026a", k1), current: "2026b", n: 2},
		{name: "url-safe unpadded", in: "a:" + base64.RawURLEncoding.EncodeToString(k1), current: "a", n: 1},
		{name: "file with comments and newlines", in: "# current\nb:" + base64.StdEncoding.EncodeToString(k2) + "\n# previous\na:" + base64.StdEncoding.EncodeToString(k1) + "\n", current: "b", n: 2},
		{name: "empty", in: " \n", wantErr: true},
		{name: "16-byte key", in: "a:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), wantErr: true},
		{name: "64-byte key", in: "a:" + base64.StdEncoding.EncodeToString(make([]byte, 64)), wantErr: true},
		{name: "duplicate id", in: keyring.Format("a", k1) + "," + keyring.Format("a", k2), wantErr: true},
		{name: "id with dot", in: keyring.Format("a.b", k1), wantErr: true},
		{name: "missing colon", in: base64.StdEncoding.EncodeToString(k1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseKeyRing(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidKeyRing) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || r.Current != tt.current || len(r.Keys) != tt.n {
				t.Fatalf("got %+v %v", r.Current, err)
			}
		})
	}
}

func TestLoadKeyRingFileAndGenerate(t *testing.T) {
	k, err := GenerateKey()
	if err != nil || len(k) != KeySize || bytes.Equal(k, make([]byte, KeySize)) {
		t.Fatalf("GenerateKey = %x %v", k, err)
	}
	path := filepath.Join(t.TempDir(), "master.keys")
	if err := os.WriteFile(path, []byte(keyring.Format("m1", k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadKeyRingFile(path)
	if err != nil || r.Current != "m1" || !bytes.Equal(r.Keys["m1"], k) {
		t.Fatalf("got %v", err)
	}
	if _, err := LoadKeyRingFile(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestNewSealerRejectsBadRing(t *testing.T) {
	for name, r := range map[string]KeyRing{
		"empty":               {},
		"current not in ring": {Current: "x", Keys: map[string][]byte{"a": key(1)}},
		"short key":           {Current: "a", Keys: map[string][]byte{"a": make([]byte, 16)}},
	} {
		if _, err := NewSealer(r); !errors.Is(err, ErrInvalidKeyRing) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// fuzzSealed is "secret" sealed with key(1) as "k1" and aad "aad". It is a
// constant because every fuzz worker process builds its own Sealer.
const fuzzSealed = "v1:k1:NN6ouoE-yjxeZLT4TsHfxquKdkLDUK7QX1N6NNEdeKc2Xw"

// FuzzOpen checks that Open never panics and opens nothing but the one value
// sealed under the fuzzed key ring (no malleable encodings, no forgeries).
func FuzzOpen(f *testing.F) {
	s, err := NewSealer(ring("k1", "k1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fuzzSealed, []byte("aad"))
	f.Add("v1:k1:", []byte(nil))
	f.Add("v1:k1:AAAA", []byte("aad"))
	f.Add("v1:k2:NN6ouoE-yjxeZLT4TsHfxquKdkLDUK7QX1N6NNEdeKc2Xw", []byte("aad"))
	f.Fuzz(func(t *testing.T, sealed string, aad []byte) {
		pt, err := s.Open(sealed, aad)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrTampered) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if sealed != fuzzSealed || string(aad) != "aad" || string(pt) != "secret" {
			t.Fatalf("opened a value we did not seal: %q", sealed)
		}
	})
}
