package inventory

import (
	"context"
	"encoding/json"
	"errors"
	gosync "sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/events"
)

// Defaults of the query service.
const (
	// DefaultCatchUpTimeout bounds how long a query waits for the store to
	// apply what the streams held when the query arrived; after it the
	// query is answered "unavailable" rather than with stale data. It is
	// shorter than the API's query timeout, so that answer arrives.
	DefaultCatchUpTimeout = 3 * time.Second
	// DefaultQueryParallelism bounds queries answered at once.
	DefaultQueryParallelism = 32
	// serviceVersion is the micro service's version.
	serviceVersion = "1.0.0"
)

// QueryService answers key and job queries from a worker's store. Every
// worker joins the same queue group, so a query is answered by one of them.
// Reads are read-your-writes: a query first waits until the store has
// applied the streams up to their last sequence at arrival.
type QueryService struct {
	st   *store.Store
	proj *Projector
	log  zerolog.Logger
	sem  chan struct{}
	svc  micro.Service
	wg   gosync.WaitGroup
}

// StartQueryService registers the query endpoints on nc. Stop it with Stop.
func StartQueryService(nc *nats.Conn, st *store.Store, proj *Projector, log zerolog.Logger) (*QueryService, error) {
	q := &QueryService{st: st, proj: proj, sem: make(chan struct{}, DefaultQueryParallelism),
		log: log.With().Str("component", "query").Logger()}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        events.QueryServiceName,
		Version:     serviceVersion,
		Description: "akvsync inventory queries (keys, jobs)",
		QueueGroup:  events.QueryQueueGroup,
	})
	if err != nil {
		return nil, err
	}
	q.svc = svc
	endpoints := []struct {
		name, endpoint, source string
		fn                     func(context.Context, []byte) (any, error)
	}{
		{"keys-list", events.QueryKeysList, SourceKeys, q.listKeys},
		{"keys-get", events.QueryKeysGet, SourceKeys, q.getKey},
		{"jobs-list", events.QueryJobsList, SourceJobs, q.listJobs},
		{"jobs-get", events.QueryJobsGet, SourceJobs, q.getJob},
		{"jobs-vaults", events.QueryJobVaults, SourceJobs, q.jobVaults},
	}
	for _, e := range endpoints {
		h := q.handler(e.source, e.fn)
		if err := svc.AddEndpoint(e.name, h, micro.WithEndpointSubject(events.QuerySubject(e.endpoint))); err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	return q, nil
}

// Stop unsubscribes the service and waits for the answers in progress.
func (q *QueryService) Stop() error {
	err := q.svc.Stop()
	q.wg.Wait()
	return err
}

// handler answers each request on its own goroutine (bounded), so a query
// waiting for catch-up does not hold up the others.
func (q *QueryService) handler(source string, fn func(context.Context, []byte) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		q.sem <- struct{}{}
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			defer func() { <-q.sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultCatchUpTimeout)
			defer cancel()
			var data any
			ok, err := q.proj.CatchUp(ctx, source, DefaultCatchUpTimeout)
			if err == nil && !ok {
				err = errBehind
			}
			if err != nil {
				q.log.Warn().Err(err).Str("source", source).Msg("cannot answer: the store is behind the streams")
				err = errors.Join(errBehind, err)
			} else {
				data, err = fn(ctx, req.Data())
			}
			reply := struct {
				Error *events.QueryError `json:"error,omitempty"`
				Data  any                `json:"data,omitempty"`
			}{Data: data}
			if err != nil {
				reply.Data = nil
				reply.Error = queryError(err)
			}
			raw, _ := json.Marshal(reply)
			if err := req.Respond(raw); err != nil {
				q.log.Warn().Err(err).Msg("cannot send query reply")
			}
		}()
	}
}

func queryError(err error) *events.QueryError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &events.QueryError{Code: events.QueryErrNotFound, Message: "Resource not found"}
	case errors.Is(err, store.ErrBadQuery), errors.Is(err, errBadRequest):
		return &events.QueryError{Code: events.QueryErrBadRequest, Message: err.Error()}
	case errors.Is(err, errBehind):
		return &events.QueryError{Code: events.QueryErrUnavailable, Message: errBehind.Error()}
	default:
		return &events.QueryError{Code: events.QueryErrInternal, Message: "internal error"}
	}
}

var (
	errBadRequest = errors.New("bad query request")
	errBehind     = errors.New("the inventory is catching up with the streams; retry")
)

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return errors.Join(errBadRequest, err)
	}
	return nil
}

func (q *QueryService) listKeys(ctx context.Context, data []byte) (any, error) {
	var kq events.KeyQuery
	if err := decode(data, &kq); err != nil {
		return nil, err
	}
	return q.st.ListKeys(ctx, kq)
}

func (q *QueryService) getKey(ctx context.Context, data []byte) (any, error) {
	var g events.GetRequest
	if err := decode(data, &g); err != nil {
		return nil, err
	}
	return q.st.GetKey(ctx, g.ID)
}

func (q *QueryService) listJobs(ctx context.Context, data []byte) (any, error) {
	var jq events.JobQuery
	if err := decode(data, &jq); err != nil {
		return nil, err
	}
	return q.st.ListJobs(ctx, jq)
}

func (q *QueryService) getJob(ctx context.Context, data []byte) (any, error) {
	var g events.JobGetRequest
	if err := decode(data, &g); err != nil {
		return nil, err
	}
	return q.st.GetJob(ctx, g.ID, g.Vaults)
}

func (q *QueryService) jobVaults(ctx context.Context, data []byte) (any, error) {
	var jq events.JobVaultQuery
	if err := decode(data, &jq); err != nil {
		return nil, err
	}
	return q.st.ListJobVaults(ctx, jq)
}
