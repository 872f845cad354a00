package control_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/nats-io/nats.go"
)

func TestQueriesWithoutWorkersAreUnavailable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.plane.Queries.Keys(testCtx(t), events.KeyQuery{})
	wantErr(t, err, control.ErrUnavailable)
	_, err = e.plane.Queries.Jobs(testCtx(t), events.JobQuery{})
	wantErr(t, err, control.ErrUnavailable)
	_, err = e.plane.Queries.Key(testCtx(t), events.NewID())
	wantErr(t, err, control.ErrUnavailable)
}

func TestQueriesTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *control.Config) { c.QueryTimeout = 100 * time.Millisecond })
	// Something subscribes but never answers (a stuck worker).
	sub, err := e.nc.Subscribe(events.QuerySubject(events.QueryKeysList), func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_, err = e.plane.Queries.Keys(testCtx(t), events.KeyQuery{})
	wantErr(t, err, control.ErrUnavailable)
}

// TestQueryReplyContract checks how the client decodes the reply shapes
// of the query contract (pkg/events QueryReply and micro error headers).
func TestQueryReplyContract(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reply   func(m *nats.Msg)
		wantErr error
	}{
		{"data", func(m *nats.Msg) {
			var q events.KeyQuery
			_ = json.Unmarshal(m.Data, &q)
			page := events.KeyPage{Skip: q.Skip, Limit: q.Limit, Total: 1, Resources: []events.KeyRecord{{ID: "k", Name: q.KeyName}}}
			b, _ := json.Marshal(events.QueryReply[events.KeyPage]{Data: &page})
			_ = m.Respond(b)
		}, nil},
		{"not found", replyError(events.QueryErrNotFound), control.ErrNotFound},
		{"bad request", replyError(events.QueryErrBadRequest), control.ErrInvalid},
		{"micro 503", func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set("Nats-Service-Error", "inventory loading")
			r.Header.Set("Nats-Service-Error-Code", "503")
			_ = m.RespondMsg(r)
		}, control.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			sub, err := e.nc.Subscribe(events.QuerySubject(events.QueryKeysList), tt.reply)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			page, err := e.plane.Queries.Keys(testCtx(t), events.KeyQuery{KeyName: "k1", Limit: 5})
			wantErr(t, err, tt.wantErr)
			if tt.wantErr == nil && (page.Total != 1 || page.Limit != 5 || page.Resources[0].Name != "k1") {
				t.Errorf("page = %+v", page)
			}
		})
	}
}

func replyError(code string) func(*nats.Msg) {
	return func(m *nats.Msg) {
		b, _ := json.Marshal(events.QueryReply[events.KeyPage]{Error: &events.QueryError{Code: code, Message: "nope"}})
		_ = m.Respond(b)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	e := setup(t)
	if err := e.plane.Ready(testCtx(t)); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	wantErr(t, e.plane.Ready(ctx), control.ErrUnavailable)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  control.Config
		ok   bool
	}{
		{"zero", control.Config{}, true},
		{"connections", control.Config{Connections: []string{"a", "b"}}, true},
		{"duplicate connection", control.Config{Connections: []string{"a", "a"}}, false},
		{"empty connection", control.Config{Connections: []string{""}}, false},
		{"negative max vaults", control.Config{MaxJobVaults: -1}, false},
		{"negative timeout", control.Config{QueryTimeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
