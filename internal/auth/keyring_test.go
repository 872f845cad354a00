package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/akvsync/akvsync/internal/keyring"
)

func TestParseKeyRing(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	std, url := base64.StdEncoding.EncodeToString(k1), base64.RawURLEncoding.EncodeToString(k2)
	tests := []struct {
		name    string
		in      string
		kid     string
		n       int
		wantErr bool
	}{
		{name: "one key", in: "k1:" + std, kid: "k1", n: 1},
		{name: "first is the signing key", in: "new:" + url + ",old:" + std, kid: "new", n: 2},
		{name: "newlines and comments", in: "# rotated 2026-03\nnew:" + url + "\n\nold:" + std + "\n", kid: "new", n: 2},
		{name: "empty", in: "", wantErr: true},
		{name: "no colon", in: std, wantErr: true},
		{name: "short key", in: "k:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), wantErr: true},
		{name: "duplicate kid", in: "a:" + std + ",a:" + url, wantErr: true},
		{name: "bad base64", in: "a:!!!", wantErr: true},
		{name: "bad kid", in: "a/b:" + std, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kid, keys, err := ParseKeyRing(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || kid != tt.kid || len(keys) != tt.n {
				t.Fatalf("got %q %d %v", kid, len(keys), err)
			}
		})
	}
}

func TestKeyRingFileRoundTrip(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.keys")
	if err := os.WriteFile(path, []byte(keyring.Format("2026-03", k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kid, keys, err := LoadKeyRingFile(path)
	if err != nil || kid != "2026-03" || !bytes.Equal(keys[kid], k) {
		t.Fatalf("got %q %v", kid, err)
	}
}
