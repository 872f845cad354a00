package connections_test

import (
	"errors"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
)

// The registry is what workers resolve connections with.
var _ azure.Connections = (*connections.Registry)(nil)

func TestConnectionFollowsRecreate(t *testing.T) {
	e := setup(t)
	api := e.newRegistry(t, e.sealer)
	first, err := api.Create(e.ctx, secretReq("prod"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.reg.Connection(e.ctx, "Prod"); err != nil || c.ClientID != testClient {
		t.Fatalf("resolve: %v", err)
	}
	// Another process deletes and recreates the name with other settings:
	// the worker's cached form must not survive.
	if _, err := api.Delete(e.ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Connection(e.ctx, "prod"); !errors.Is(err, connections.ErrNotFound) {
		t.Fatalf("deleted connection resolved: %v", err)
	}
	req := secretReq("prod")
	req.ClientID = "11111111-0000-0000-0000-000000000000"
	if _, err := api.Create(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	c, err := e.reg.Connection(e.ctx, "prod")
	if err != nil || c.ClientID != req.ClientID {
		t.Fatalf("recreated connection: %q %v", c.ClientID, err)
	}
	// The returned form is a copy.
	c.ClientSecret = "changed"
	if again, _ := e.reg.Connection(e.ctx, "prod"); again.ClientSecret != testSecret {
		t.Fatalf("cache was modified through a returned value")
	}
}
