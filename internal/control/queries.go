package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/nats-io/nats.go"
)

// Headers a NATS micro service sets on an error reply (req.Error).
const (
	microErrorHeader     = "Nats-Service-Error"
	microErrorCodeHeader = "Nats-Service-Error-Code"
)

// Queries is a client of the workers' inventory query service (a NATS
// micro service in a queue group; see [events.QueryServiceName]). No
// responder or no answer within the query timeout is [ErrUnavailable].
type Queries struct {
	nc  *nats.Conn
	cfg Config
}

// Keys returns one page of keys matching q.
func (q *Queries) Keys(ctx context.Context, query events.KeyQuery) (events.KeyPage, error) {
	var page events.KeyPage
	err := q.request(ctx, events.QueryKeysList, query, &page)
	if page.Resources == nil {
		page.Resources = []events.KeyRecord{}
	}
	return page, err
}

// Key returns the key record with the given id.
func (q *Queries) Key(ctx context.Context, id string) (events.KeyRecord, error) {
	if !IsID(id) {
		return events.KeyRecord{}, notFoundf("key %q not found", id)
	}
	var k events.KeyRecord
	err := q.request(ctx, events.QueryKeysGet, events.GetRequest{ID: id}, &k)
	return k, err
}

// Jobs returns one page of jobs matching query, newest first, as the
// workers' inventory knows them (a worker answers once it has applied the
// jobs bucket as it was when the query arrived). Each job carries its
// progress and at most events.ListDetailVaults vaults.
func (q *Queries) Jobs(ctx context.Context, query events.JobQuery) (events.JobPage, error) {
	var page events.JobPage
	err := q.request(ctx, events.QueryJobsList, query, &page)
	if page.Resources == nil {
		page.Resources = []events.JobDetail{}
	}
	return page, err
}

// Job returns a job with its progress and at most vaults of its vaults
// (failures first) from the workers' inventory.
func (q *Queries) Job(ctx context.Context, id string, vaults int) (events.JobDetail, error) {
	var d events.JobDetail
	err := q.request(ctx, events.QueryJobsGet, events.JobGetRequest{ID: id, Vaults: vaults}, &d)
	return d, err
}

// JobVaults returns one page of a job's vaults from the workers'
// inventory.
func (q *Queries) JobVaults(ctx context.Context, query events.JobVaultQuery) (events.JobVaultPage, error) {
	var page events.JobVaultPage
	err := q.request(ctx, events.QueryJobVaults, query, &page)
	if page.Resources == nil {
		page.Resources = []events.JobVault{}
	}
	return page, err
}

// request sends body to a query endpoint and decodes the reply's data
// into out.
func (q *Queries) request(ctx context.Context, endpoint string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("control: encode %s query: %w", endpoint, err)
	}
	if q.cfg.QueryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.cfg.QueryTimeout)
		defer cancel()
	}
	msg, err := q.nc.RequestWithContext(ctx, events.QuerySubject(endpoint), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return unavailable("query "+endpoint, errors.New("no worker is answering queries"))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return unavailable("query "+endpoint, errors.New("no worker answered in time"))
	case err != nil:
		return unavailable("query "+endpoint, err)
	}
	if code := msg.Header.Get(microErrorCodeHeader); code != "" {
		return microError(endpoint, code, msg.Header.Get(microErrorHeader))
	}
	reply := struct {
		Error *events.QueryError `json:"error,omitempty"`
		Data  json.RawMessage    `json:"data,omitempty"`
	}{}
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("control: query %s: malformed reply: %w", endpoint, err)
	}
	if reply.Error != nil {
		return queryError(endpoint, *reply.Error)
	}
	if len(reply.Data) == 0 || string(reply.Data) == "null" {
		return fmt.Errorf("control: query %s: reply has neither data nor error", endpoint)
	}
	if err := json.Unmarshal(reply.Data, out); err != nil {
		return fmt.Errorf("control: query %s: malformed reply data: %w", endpoint, err)
	}
	return nil
}

// queryError maps a query error reply to this package's sentinels.
func queryError(endpoint string, e events.QueryError) error {
	switch e.Code {
	case events.QueryErrNotFound:
		return notFoundf("%s", e.Message)
	case events.QueryErrBadRequest:
		return invalidf("%s", e.Message)
	case events.QueryErrUnavailable:
		return unavailable("query "+endpoint, errors.New(e.Message))
	default:
		return fmt.Errorf("control: query %s failed: %s: %s", endpoint, e.Code, e.Message)
	}
}

// microError maps a micro service error reply (HTTP-like code) to this
// package's sentinels.
func microError(endpoint, code, description string) error {
	n, _ := strconv.Atoi(code)
	switch {
	case n == 404:
		return notFoundf("%s", description)
	case n == 400:
		return invalidf("%s", description)
	case n == 503:
		return unavailable("query "+endpoint, errors.New(description))
	default:
		return fmt.Errorf("control: query %s failed: %s %s", endpoint, code, description)
	}
}
