package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// publishEvent publishes a CloudEvent to JetStream. msgID, when set,
// deduplicates redelivered work within the stream's duplicate window.
func publishEvent(ctx context.Context, js jetstream.JetStream, source, subject, typ, ceSubject, msgID string, data any) (*jetstream.PubAck, error) {
	raw, err := events.MarshalEvent(source, typ, ceSubject, data)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := js.Publish(ctx, subject, raw, opts...)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}

// getJob reads a job record and its revision.
func getJob(ctx context.Context, kv jetstream.KeyValue, id string) (events.Job, uint64, error) {
	e, err := kv.Get(ctx, id)
	if err != nil {
		return events.Job{}, 0, fmt.Errorf("job %s: %w", id, err)
	}
	var j events.Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return events.Job{}, 0, fmt.Errorf("job %s: decode: %w", id, err)
	}
	return j, e.Revision(), nil
}

// jobState is the part of a job record a vault sync checks: a light
// decode, since the record of a big job holds thousands of vaults.
type jobState struct {
	OverallStatus events.JobStatus `json:"overall_status"`
	Abort         bool             `json:"abort"`
	Vaults        []struct {
		VaultID string             `json:"vault_id"`
		Status  events.VaultStatus `json:"status"`
	} `json:"vaults"`
}

// vaultStatus is the status of one vault of the job, and whether the job
// has that vault.
func (j jobState) vaultStatus(vaultID string) (events.VaultStatus, bool) {
	for _, v := range j.Vaults {
		if v.VaultID == vaultID {
			return v.Status, true
		}
	}
	return "", false
}

// getJobState reads the parts of a job record a vault sync checks.
func getJobState(ctx context.Context, kv jetstream.KeyValue, id string) (jobState, error) {
	e, err := kv.Get(ctx, id)
	if err != nil {
		return jobState{}, fmt.Errorf("job %s: %w", id, err)
	}
	var j jobState
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return jobState{}, fmt.Errorf("job %s: decode: %w", id, err)
	}
	return j, nil
}

// errNoChange tells updateJob that mutate left the job as it was.
var errNoChange = errors.New("no change")

// updateJob applies mutate to the job with compare-and-set, retrying on a
// concurrent update. mutate returns errNoChange to skip the write. It
// returns the job as written (or as found when unchanged).
func updateJob(ctx context.Context, kv jetstream.KeyValue, id string, retries int, mutate func(*events.Job) error) (events.Job, bool, error) {
	for i := 0; ; i++ {
		j, rev, err := getJob(ctx, kv, id)
		if err != nil {
			return events.Job{}, false, err
		}
		if err := mutate(&j); errors.Is(err, errNoChange) {
			return j, false, nil
		} else if err != nil {
			return j, false, err
		}
		raw, err := json.Marshal(j)
		if err != nil {
			return j, false, err
		}
		_, err = kv.Update(ctx, id, raw, rev)
		if err == nil {
			return j, true, nil
		}
		if !revisionMismatch(err) || i >= retries {
			return j, false, fmt.Errorf("update job %s: %w", id, err)
		}
	}
}

// revisionMismatch reports a compare-and-set conflict on a key-value
// bucket, whichever code the stream used (R1 and R3 streams differ).
func revisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
