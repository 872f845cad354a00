package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/akvsync/akvsync/internal/keyring"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMasterKeyRing(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ring := keyring.Format("m7", key)

	t.Run("FromValueAndFromFile", func(t *testing.T) {
		for _, r := range []func() (KeyRing, error){
			func() (KeyRing, error) { return MasterKeyRing(ring, "", "") },
			func() (KeyRing, error) { return MasterKeyRing("", write(t, t.TempDir(), "mk", ring), "") },
		} {
			kr, err := r()
			if err != nil || kr.Current != "m7" {
				t.Fatalf("ring = %+v, %v", kr, err)
			}
		}
	})
	t.Run("GeneratedOnceInTheDataDirAndKept", func(t *testing.T) {
		dir := t.TempDir()
		a, err := MasterKeyRing("", "", dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := MasterKeyRing("", "", dir)
		if err != nil {
			t.Fatal(err)
		}
		if string(a.Keys[a.Current]) != string(b.Keys[b.Current]) {
			t.Fatal("a second start generated another key: the sealed secrets would not open")
		}
		if fi, _ := os.Stat(filepath.Join(dir, MasterKeyFile)); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode().Perm())
		}
	})
	t.Run("NoneIsAClearError", func(t *testing.T) {
		if _, err := MasterKeyRing("", "", ""); !errors.Is(err, ErrNoMasterKey) {
			t.Fatalf("err = %v", err)
		}
	})
}
