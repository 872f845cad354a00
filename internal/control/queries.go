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

// Keys returns one page of keys matching q, however long: it collects
// what StreamKeys streams (memory grows with the page; the API streams
// instead).
func (q *Queries) Keys(ctx context.Context, query events.KeyQuery) (events.KeyPage, error) {
	page := events.KeyPage{Resources: []events.KeyRecord{}}
	err := q.StreamKeys(ctx, query, func(h events.KeyPage) error {
		page.Skip, page.Limit, page.Total = h.Skip, h.Limit, h.Total
		return nil
	}, func(r events.KeyRecord) error {
		page.Resources = append(page.Resources, r)
		return nil
	})
	return page, err
}

// StreamKeys runs a key query: it calls head with the page's skip, limit
// and total (no resources), then each with every record of the page in
// order. A page of at most events.MaxPageLimit keys is one keys.list
// reply; a longer one (or LimitAll) is a keys.export stream of chunks of
// at most events.MaxChunkBytes, each acknowledged after each has handled
// its records, so memory is bounded by events.ExportWindow chunks however
// long the list.
//
// An error before head is called is this package's usual error (not
// found, invalid, unavailable); after it, the list is cut short and the
// error says so.
func (q *Queries) StreamKeys(ctx context.Context, query events.KeyQuery, head func(events.KeyPage) error, each func(events.KeyRecord) error) error {
	if query.Limit != events.LimitAll && query.Limit <= events.MaxPageLimit {
		var page events.KeyPage
		if err := q.request(ctx, events.QueryKeysList, query, &page); err != nil {
			return err
		}
		if err := head(events.KeyPage{Skip: page.Skip, Limit: page.Limit, Total: page.Total}); err != nil {
			return err
		}
		for _, r := range page.Resources {
			if err := each(r); err != nil {
				return err
			}
		}
		return nil
	}
	inbox := q.nc.NewInbox()
	sub, err := q.nc.SubscribeSync(inbox)
	if err != nil {
		return unavailable("query "+events.QueryKeysExport, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var h events.KeyPage
	if err := q.request(ctx, events.QueryKeysExport, events.KeyExportRequest{Query: query, Inbox: inbox}, &h); err != nil {
		return err
	}
	if err := head(events.KeyPage{Skip: h.Skip, Limit: h.Limit, Total: h.Total}); err != nil {
		return err
	}
	for seq := 1; ; seq++ {
		msg, err := q.nextChunk(ctx, sub)
		if err != nil {
			return fmt.Errorf("control: key export cut short at chunk %d: %w", seq, err)
		}
		var c events.KeyExportChunk
		if err := json.Unmarshal(msg.Data, &c); err != nil {
			return fmt.Errorf("control: key export chunk %d: malformed: %w", seq, err)
		}
		switch {
		case c.Error != nil:
			return fmt.Errorf("control: key export cut short at chunk %d: %w", seq, queryError(events.QueryKeysExport, *c.Error))
		case c.Seq != seq:
			return fmt.Errorf("control: key export: chunk %d arrived as chunk %d", c.Seq, seq)
		}
		for _, r := range c.Resources {
			if err := each(r); err != nil {
				return err
			}
		}
		if err := msg.Respond(nil); err != nil {
			return unavailable("acknowledge key export chunk", err)
		}
		if c.Done {
			return nil
		}
	}
}

// nextChunk waits for the next export chunk, up to the query timeout.
func (q *Queries) nextChunk(ctx context.Context, sub *nats.Subscription) (*nats.Msg, error) {
	if q.cfg.QueryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.cfg.QueryTimeout)
		defer cancel()
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, unavailable("key export", err)
	}
	return msg, nil
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
