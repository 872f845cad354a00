package secrets

import (
	"errors"
	"path/filepath"

	"github.com/akvsync/akvsync/internal/keyring"
)

// MasterKeyFile is the name of the master key ring an embedded process
// generates in its data directory when none is configured.
const MasterKeyFile = "master-keys"

// ErrNoMasterKey is returned when a process needs the master key (to seal or
// open connection secrets) and none is configured.
var ErrNoMasterKey = errors.New("no master key: set AKVSYNC_MASTER_KEYS or --master-key-file")

// MasterKeyRing loads the master key ring that seals connection secrets:
// from value ("kid:base64,…", first current) or file; else, when dataDir is
// set (embedded), from dataDir/master-keys, generating it (0600) on first
// start; else ErrNoMasterKey.
func MasterKeyRing(value, file, dataDir string) (KeyRing, error) {
	switch {
	case value != "":
		return ParseKeyRing(value)
	case file != "":
		return LoadKeyRingFile(file)
	case dataDir == "":
		return KeyRing{}, ErrNoMasterKey
	}
	path := filepath.Join(dataDir, MasterKeyFile)
	if err := keyring.Ensure(path, "m1", KeySize); err != nil {
		return KeyRing{}, err
	}
	return LoadKeyRingFile(path)
}
