package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	// DefaultDetailWait bounds how long a job's detail query waits for the
	// store to catch up before answering from the store as it is.
	DefaultDetailWait = 250 * time.Millisecond
	// DefaultQueryParallelism bounds queries answered at once.
	DefaultQueryParallelism = 32
	// DefaultChunkAckTimeout bounds the wait for the requester to
	// acknowledge a keys.export chunk; past it the export stops (the
	// requester is gone or stuck).
	DefaultChunkAckTimeout = 30 * time.Second
	// serviceVersion is the micro service's version.
	serviceVersion = "1.1.0"
)

// QueryService answers key and job queries from a worker's store. Every
// worker joins the same queue group, so a query is answered by one of them.
// Reads are read-your-writes: a query first waits until the store has
// applied the streams up to their last sequence at arrival.
type QueryService struct {
	nc   *nats.Conn
	st   *store.Store
	proj *Projector
	log  zerolog.Logger
	sem  chan struct{}
	svc  micro.Service
	wg   sync.WaitGroup
	// stopping is cancelled by Stop: running exports end at their next
	// record or acknowledgement.
	stopping context.Context
	stop     context.CancelFunc
}

// StartQueryService registers the query endpoints on nc. Stop it with Stop.
func StartQueryService(nc *nats.Conn, st *store.Store, proj *Projector, log zerolog.Logger) (*QueryService, error) {
	stopping, stop := context.WithCancel(context.Background())
	q := &QueryService{nc: nc, st: st, proj: proj, stopping: stopping, stop: stop, sem: make(chan struct{}, DefaultQueryParallelism),
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
		// bestEffort, when set, bounds the wait for the store to catch
		// up, after which the query is answered from the store as it is.
		bestEffort time.Duration
	}{
		{"keys-list", events.QueryKeysList, SourceKeys, q.listKeys, 0},
		{"keys-get", events.QueryKeysGet, SourceKeys, q.getKey, 0},
		{"jobs-list", events.QueryJobsList, SourceJobs, q.listJobs, 0},
		// A job's GET reads its header from the job record itself; only
		// its progress and vault detail come from here, and a moment
		// behind is fine for those.
		{"jobs-get", events.QueryJobsGet, SourceJobs, q.getJob, DefaultDetailWait},
		{"jobs-vaults", events.QueryJobVaults, SourceJobs, q.jobVaults, 0},
	}
	for _, e := range endpoints {
		h := q.handler(e.source, e.bestEffort, e.fn)
		if err := svc.AddEndpoint(e.name, h, micro.WithEndpointSubject(events.QuerySubject(e.endpoint))); err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	if err := svc.AddEndpoint("keys-export", micro.HandlerFunc(q.exportKeys),
		micro.WithEndpointSubject(events.QuerySubject(events.QueryKeysExport))); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	return q, nil
}

// Stop unsubscribes the service and waits for the answers in progress.
func (q *QueryService) Stop() error {
	err := q.svc.Stop()
	q.stop()
	q.wg.Wait()
	return err
}

// handler answers each request on its own goroutine (bounded), so a query
// waiting for catch-up does not hold up the others.
func (q *QueryService) handler(source string, bestEffort time.Duration, fn func(context.Context, []byte) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		q.sem <- struct{}{}
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			defer func() { <-q.sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultCatchUpTimeout)
			defer cancel()
			var data any
			wait := DefaultCatchUpTimeout
			if bestEffort > 0 {
				wait = bestEffort
			}
			ok, err := q.proj.CatchUp(ctx, source, wait)
			if err == nil && !ok && bestEffort == 0 {
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
	if kq.Limit == events.LimitAll || kq.Limit > events.MaxPageLimit {
		return nil, fmt.Errorf("%w: limit %d: a page holds at most %d keys; use %s for more",
			errBadRequest, kq.Limit, events.MaxPageLimit, events.QueryKeysExport)
	}
	return q.st.ListKeys(ctx, kq)
}

// exportKeys answers keys.export: the request is answered with the page
// head (or an error), then the records go to the requester's inbox in
// chunks of at most events.MaxChunkBytes, each acknowledged before the
// next is sent. The records come from one read transaction, so the
// export is one snapshot: every key once.
func (q *QueryService) exportKeys(req micro.Request) {
	q.sem <- struct{}{}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		defer func() { <-q.sem }()
		respond := func(v any) {
			raw, _ := json.Marshal(v)
			if err := req.Respond(raw); err != nil {
				q.log.Warn().Err(err).Msg("cannot send query reply")
			}
		}
		fail := func(err error) {
			respond(events.QueryReply[events.KeyPage]{Error: queryError(err)})
		}
		var er events.KeyExportRequest
		if err := decode(req.Data(), &er); err != nil {
			fail(err)
			return
		}
		if !exportInbox(er.Inbox) {
			fail(fmt.Errorf("%w: inbox %q is not an inbox subject", errBadRequest, er.Inbox))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultCatchUpTimeout)
		ok, err := q.proj.CatchUp(ctx, SourceKeys, DefaultCatchUpTimeout)
		cancel()
		if err == nil && !ok {
			err = errBehind
		}
		if err != nil {
			q.log.Warn().Err(err).Msg("cannot answer: the store is behind the streams")
			fail(errors.Join(errBehind, err))
			return
		}
		ch := &chunker{ctx: q.stopping, nc: q.nc, inbox: er.Inbox}
		defer ch.close()
		headSent := false
		err = q.st.StreamKeys(q.stopping, er.Query, func(total, limit int) error {
			headSent = true
			respond(events.QueryReply[events.KeyPage]{Data: &events.KeyPage{Skip: er.Query.Skip, Limit: limit, Total: total}})
			return nil
		}, ch.add)
		if err == nil {
			err = ch.flush(true)
		}
		switch {
		case err == nil:
		case !headSent:
			fail(err)
		default:
			q.log.Warn().Err(err).Int("chunks", ch.seq).Msg("key export stopped")
			ch.abort(queryError(err))
		}
	}()
}

// exportInbox reports whether a key export may be sent to inbox: a
// literal inbox subject, of the API's inbox prefix (events.RoleAPI) or
// NATS's default one.
func exportInbox(inbox string) bool {
	if strings.ContainsAny(inbox, "*> ") {
		return false
	}
	return strings.HasPrefix(inbox, nats.InboxPrefix) || strings.HasPrefix(inbox, events.RoleAPI.InboxPrefix()+".")
}

// chunker sends a key export's records in chunks: the JSON of
// events.KeyExportChunk written incrementally, sent when the next record
// would take it past events.MaxChunkBytes, with at most events.ExportWindow
// chunks unacknowledged.
type chunker struct {
	ctx      context.Context
	nc       *nats.Conn
	inbox    string
	seq      int
	n        int    // records in buf
	buf      []byte // the resources array so far, without brackets
	acks     *nats.Subscription
	inflight int
}

func (c *chunker) add(r events.KeyRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if c.n > 0 && len(c.buf)+len(raw)+chunkOverhead > events.MaxChunkBytes {
		if err := c.flush(false); err != nil {
			return err
		}
	}
	if c.n > 0 {
		c.buf = append(c.buf, ',')
	}
	c.buf = append(c.buf, raw...)
	c.n++
	return nil
}

// chunkOverhead bounds the bytes of a chunk around its resources.
const chunkOverhead = 64

// flush sends the pending records (done: as the last chunk) and waits
// for the acknowledgement.
func (c *chunker) flush(done bool) error {
	c.seq++
	msg := fmt.Appendf(nil, `{"seq":%d,"done":%t,"resources":[`, c.seq, done)
	msg = append(append(msg, c.buf...), "]}"...)
	c.buf, c.n = c.buf[:0], 0
	if c.acks == nil {
		sub, err := c.nc.SubscribeSync(c.nc.NewInbox())
		if err != nil {
			return fmt.Errorf("inventory: key export: %w", err)
		}
		c.acks = sub
	}
	limit := events.ExportWindow - 1
	if done {
		limit = 0 // wait for every acknowledgement after the last chunk
	}
	if err := c.nc.PublishMsg(&nats.Msg{Subject: c.inbox, Reply: c.acks.Subject, Data: msg}); err != nil {
		return fmt.Errorf("inventory: key export chunk %d: %w", c.seq, err)
	}
	c.inflight++
	for c.inflight > limit {
		if err := c.awaitAck(); err != nil {
			return fmt.Errorf("inventory: key export: acknowledgement of chunk %d: %w", c.seq-c.inflight+1, err)
		}
		c.inflight--
	}
	return nil
}

// awaitAck waits for one acknowledgement, up to DefaultChunkAckTimeout.
func (c *chunker) awaitAck() error {
	ctx, cancel := context.WithTimeout(c.ctx, DefaultChunkAckTimeout)
	defer cancel()
	_, err := c.acks.NextMsgWithContext(ctx)
	return err
}

// close releases the acknowledgement subscription.
func (c *chunker) close() {
	if c.acks != nil {
		_ = c.acks.Unsubscribe()
	}
}

// abort tells the requester the export failed (best effort).
func (c *chunker) abort(e *events.QueryError) {
	c.seq++
	raw, _ := json.Marshal(events.KeyExportChunk{Seq: c.seq, Done: true, Error: e, Resources: []events.KeyRecord{}})
	_ = c.nc.Publish(c.inbox, raw)
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
