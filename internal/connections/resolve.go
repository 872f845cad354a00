package connections

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/akvsync/akvsync/internal/azure"
)

// cached is a decrypted connection and the record revision it was built
// from.
type cached struct {
	id   string
	rev  uint64
	conn azure.Connection
}

// Connection returns the decrypted connection with the given name (or
// id), ready for the Azure adapter; it implements azure.Connections.
//
// Each call reads the record (one KV get) and reuses the decrypted form
// only while the record's revision is unchanged, so a patched connection
// takes effect on the next sync in every process. Errors wrap
// [ErrNotFound], [ErrUnavailable] or [ErrCorrupt].
func (r *Registry) Connection(ctx context.Context, name string) (azure.Connection, error) {
	key := strings.ToLower(name)
	r.mu.Lock()
	c, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		rec, rev, err := r.byID(ctx, c.id)
		switch {
		case err == nil && rev == c.rev:
			return cloneConn(c.conn), nil
		case err == nil && strings.EqualFold(rec.Name, name):
			return r.decrypt(rec, rev)
		case err != nil && !errors.Is(err, ErrNotFound):
			return azure.Connection{}, err
		}
		r.forget(name) // deleted, or the id now names another record
	}
	rec, rev, err := r.load(ctx, name)
	if err != nil {
		return azure.Connection{}, err
	}
	return r.decrypt(rec, rev)
}

// decrypt opens rec's secrets, checks the result and caches it under the
// record's name.
func (r *Registry) decrypt(rec record, rev uint64) (azure.Connection, error) {
	sec, err := rec.open(r.sealer)
	if err != nil {
		return azure.Connection{}, err
	}
	conn := azureConnection(rec.Settings, sec)
	if err := conn.Validate(); err != nil {
		return azure.Connection{}, corrupt(rec.ID, "stored settings", err)
	}
	r.mu.Lock()
	r.cache[strings.ToLower(rec.Name)] = cached{id: rec.ID, rev: rev, conn: cloneConn(conn)}
	r.mu.Unlock()
	return conn, nil
}

// forget drops the cached connection of a name.
func (r *Registry) forget(name string) {
	r.mu.Lock()
	delete(r.cache, strings.ToLower(name))
	r.mu.Unlock()
}

// cloneConn copies the byte slices of c, so callers cannot change the
// cached form.
func cloneConn(c azure.Connection) azure.Connection {
	c.CertificatePEM = slices.Clone(c.CertificatePEM)
	c.ExtraCAPEM = slices.Clone(c.ExtraCAPEM)
	return c
}
