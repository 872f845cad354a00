package connections

import (
	"context"
	"errors"

	"github.com/akvsync/akvsync/pkg/events"
)

// ResealStats counts what [Registry.Reseal] did.
type ResealStats struct {
	// Connections is the number of connection records examined.
	Connections int `json:"connections"`
	// Resealed is the number of records rewritten under the current key.
	Resealed int `json:"resealed"`
	// Current is the number of records already under the current key
	// (or without secrets).
	Current int `json:"current"`
	// Failed is the number of records that could not be resealed; the
	// returned error says why.
	Failed int `json:"failed"`
}

// Reseal re-encrypts every stored secret that is not under the sealer's
// current master key (after a rotation put a new key first in the ring,
// with the old one still present). Each record is rewritten with
// compare-and-set, so a concurrent patch is never lost. Records that fail
// (for example sealed under a key no longer in the ring) are counted and
// reported in the error, which wraps [ErrCorrupt] or [ErrUnavailable];
// the others are still resealed. Running it again is harmless.
func (r *Registry) Reseal(ctx context.Context) (ResealStats, error) {
	recs, _, err := r.all(ctx)
	if err != nil {
		return ResealStats{}, err
	}
	var st ResealStats
	var errs []error
	for _, rec := range recs {
		st.Connections++
		changed, err := r.resealOne(ctx, rec.ID)
		switch {
		case err != nil:
			st.Failed++
			errs = append(errs, err)
		case changed:
			st.Resealed++
		default:
			st.Current++
		}
	}
	r.cfg.Logger.Info().Str("key_id", r.sealer.CurrentKeyID()).Int("connections", st.Connections).
		Int("resealed", st.Resealed).Int("failed", st.Failed).Msg("connection secrets resealed")
	return st, errors.Join(errs...)
}

// resealOne reseals the secrets of one record, retrying on concurrent
// updates. It reports whether the record was rewritten.
func (r *Registry) resealOne(ctx context.Context, id string) (bool, error) {
	_, changed, err := r.update(ctx, id, "reseal connection "+id, func(rec *record) error {
		prev := *rec
		for _, f := range []struct {
			field string
			v     *string
		}{{fieldClientSecret, &rec.ClientSecret}, {fieldCertificate, &rec.Certificate}} {
			if *f.v == "" || !r.sealer.NeedsReseal(*f.v) {
				continue
			}
			v, err := r.sealer.Reseal(*f.v, aad(rec.ID, f.field))
			if err != nil {
				return corrupt(rec.ID, "reseal "+f.field, err)
			}
			*f.v = v
		}
		if rec.ClientSecret == prev.ClientSecret && rec.Certificate == prev.Certificate {
			return events.ErrNoChange
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil // deleted meanwhile
	case errors.Is(err, events.ErrContended):
		return false, conflictf("connection %s changed concurrently %d times while resealing; run again", id, r.cfg.CASRetries)
	}
	return changed, err
}
