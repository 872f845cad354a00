package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseUnderRules(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	long := bytes.Repeat([]byte{7}, 48)
	strict := Rules{MaxKIDLen: 8, KIDPunct: "-", MinKeyLen: 32, MaxKeyLen: 32}
	loose := Rules{MaxKIDLen: 64, KIDPunct: "-_.", MinKeyLen: 32}
	for _, c := range []struct {
		name     string
		in       string
		r        Rules
		current  string
		n        int
		wantFail bool
	}{
		{"first is current", "b:" + base64.StdEncoding.EncodeToString(key) + ",\n# old\na:" + base64.RawURLEncoding.EncodeToString(key), strict, "b", 2, false},
		{"a dot where the rules allow it", "v1.2:" + base64.StdEncoding.EncodeToString(long), loose, "v1.2", 1, false},
		{"a dot where they do not", "v1.2:" + base64.StdEncoding.EncodeToString(key), strict, "", 0, true},
		{"a key id too long", "abcdefghi:" + base64.StdEncoding.EncodeToString(key), strict, "", 0, true},
		{"a key too long", "a:" + base64.StdEncoding.EncodeToString(long), strict, "", 0, true},
		{"a key too short", "a:" + base64.StdEncoding.EncodeToString(key[:16]), loose, "", 0, true},
		{"no colon", base64.StdEncoding.EncodeToString(key), loose, "", 0, true},
		{"a duplicate", "a:" + base64.StdEncoding.EncodeToString(key) + " a:" + base64.StdEncoding.EncodeToString(key), loose, "", 0, true},
		{"bad base64", "a:!!!", loose, "", 0, true},
		{"empty", "# nothing\n", loose, "", 0, true},
	} {
		ring, err := Parse(c.in, c.r)
		if c.wantFail {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", c.name, err)
			}
			continue
		}
		if err != nil || ring.Current != c.current || len(ring.Keys) != c.n {
			t.Errorf("%s: ring %q with %d keys, %v", c.name, ring.Current, len(ring.Keys), err)
		}
		if err := c.r.Check(ring); err != nil {
			t.Errorf("%s: a parsed ring fails Check: %v", c.name, err)
		}
	}
	if err := loose.Check(Ring{Current: "x", Keys: map[string][]byte{"a": key}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a current key outside the ring passed Check: %v", err)
	}
}

func TestEnsureWritesOnceAndKeeps(t *testing.T) {
	r := Rules{MaxKIDLen: 8, MinKeyLen: 32, MaxKeyLen: 32}
	path := filepath.Join(t.TempDir(), "keys")
	if err := Ensure(path, "k1", 32); err != nil {
		t.Fatal(err)
	}
	first, err := LoadFile(path, r)
	if err != nil || first.Current != "k1" {
		t.Fatalf("ring %+v, %v", first, err)
	}
	if err := Ensure(path, "k2", 32); err != nil {
		t.Fatal(err)
	}
	again, err := LoadFile(path, r)
	if err != nil || again.Current != "k1" || !bytes.Equal(again.Keys["k1"], first.Keys["k1"]) {
		t.Fatal("a second Ensure replaced the key ring")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
}
