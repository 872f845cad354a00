package auth

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// DefaultUsersFilePoll is how often [Service.WatchUsersFile] looks at the
// users file by default.
const DefaultUsersFilePoll = 2 * time.Second

// WatchUsersFile reloads the users ([Service.ReloadUsers]) whenever the
// users file's content changes, looking every interval (<= 0:
// [DefaultUsersFilePoll]) until ctx ends. Polling the content, not
// watching inodes, follows editors' atomic renames and mounted
// configuration maps alike. Without a users file it returns at once.
func (s *Service) WatchUsersFile(ctx context.Context, interval time.Duration) {
	path := s.users.path
	if path == "" {
		return
	}
	if interval <= 0 {
		interval = DefaultUsersFilePoll
	}
	digest := func() ([32]byte, bool) {
		b, err := os.ReadFile(path) // #nosec G304 -- the users file the operator configured (Config.UsersFile)
		if err != nil {
			return [32]byte{}, false
		}
		return sha256.Sum256(b), true
	}
	// Compared with what was last loaded, so a change made before the
	// watch started is not missed.
	last := s.users.loadedDigest()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d, ok := digest()
		if !ok || d == last {
			continue
		}
		last = d // an invalid file is not retried until it changes again
		s.log.Info().Msg("users file changed; reloading")
		_ = s.ReloadUsers(ctx) // logged; the previous users stay on error
	}
}
