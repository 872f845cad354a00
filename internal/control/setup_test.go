package control_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	testConn = "azure-conn"
	testSub  = "11111111-2222-3333-4444-555555555555"
	otherSub = "99999999-8888-7777-6666-555555555555"
)

// env is one test's NATS server and control plane.
type env struct {
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	plane *control.Plane
	cfg   control.Config
}

// setup starts a JetStream server, creates the topology and a control plane.
func setup(t *testing.T, mods ...func(*control.Config)) *env {
	t.Helper()
	srv := natstest.RunServer(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv)
	ctx := testCtx(t)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatalf("topology: %v", err)
	}
	cfg := control.Config{Connections: []string{testConn}, Endpoints: azure.EndpointPolicy{AllowPrivate: true}}
	for _, m := range mods {
		m(&cfg)
	}
	plane, err := control.New(ctx, nc, js, cfg)
	if err != nil {
		t.Fatalf("control.New: %v", err)
	}
	return &env{srv: srv, nc: nc, js: js, plane: plane, cfg: cfg}
}

// newPlane returns a second control plane (another "API process") on its
// own connection to the same server.
func (e *env) newPlane(t *testing.T) *control.Plane {
	t.Helper()
	nc, js := natstest.Connect(t, e.srv)
	p, err := control.New(testCtx(t), nc, js, e.cfg)
	if err != nil {
		t.Fatalf("control.New: %v", err)
	}
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// vaultReq is an add-vaults request for the given names in testSub.
func vaultReq(sub string, names ...string) control.AddVaultsRequest {
	req := control.AddVaultsRequest{Connection: testConn, SubscriptionID: sub}
	for _, n := range names {
		req.Vaults = append(req.Vaults, control.AddVault{
			Name:       n,
			Location:   "westeurope",
			Properties: control.VaultProperties{VaultURI: "https://" + n + ".vault.azure.net/"},
			Tags:       map[string]string{"env": "test"},
		})
	}
	return req
}

// addVaults registers vaults and fails the test on error.
func (e *env) addVaults(t *testing.T, sub string, names ...string) []events.Vault {
	t.Helper()
	vs, err := e.plane.Vaults.AddVaults(testCtx(t), vaultReq(sub, names...))
	if err != nil {
		t.Fatalf("AddVaults(%v): %v", names, err)
	}
	return vs
}

// keys lists the live keys of a bucket.
func (e *env) keys(t *testing.T, bucket string) []string {
	t.Helper()
	kv, err := e.js.KeyValue(testCtx(t), bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	keys, err := kv.Keys(testCtx(t))
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("keys of %s: %v", bucket, err)
	}
	return keys
}

// get reads a KV value ("" when absent).
func (e *env) get(t *testing.T, bucket, key string) string {
	t.Helper()
	kv, err := e.js.KeyValue(testCtx(t), bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	en, err := kv.Get(testCtx(t), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return string(en.Value())
}

// streamMsgs returns the number of messages in a stream.
func (e *env) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State.Msgs
}

// wantErr checks that err wraps want (nil: no error).
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
}
