package events_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/pkg/events"
)

// TestShippedNATSUsers keeps deploy/nats/accounts.conf equal to the
// permissions defined in Go. AKVSYNC_UPDATE_DEPLOY=1 rewrites the file.
func TestShippedNATSUsers(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "deploy", "nats", "accounts.conf")
	want := events.NATSAuthorization()
	if os.Getenv("AKVSYNC_UPDATE_DEPLOY") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from events.NATSAuthorization(); run AKVSYNC_UPDATE_DEPLOY=1 go test ./pkg/events -run TestShippedNATSUsers", path)
	}
}

// TestServiceUsersHoldNoWildcardAPI checks the shape of every service
// role's permissions: no $JS.API.> and no stream, bucket or durable
// consumer administration.
func TestServiceUsersHoldNoWildcardAPI(t *testing.T) {
	t.Parallel()
	forbidden := []string{"$JS.API.>", "$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE", "$JS.API.STREAM.DELETE",
		"$JS.API.CONSUMER.DURABLE", "$JS.API.STREAM.RESTORE", "$JS.API.STREAM.SNAPSHOT", ">", "_INBOX.>"}
	for _, r := range []events.Role{events.RoleAPI, events.RoleWorker, events.RoleMonitor} {
		p := r.Permissions()
		for _, s := range append(append([]string{}, p.Publish.Allow...), p.Subscribe.Allow...) {
			for _, f := range forbidden {
				if s == f || strings.HasPrefix(s, f+".") || (f != ">" && f != "_INBOX.>" && strings.HasPrefix(s, f)) {
					t.Errorf("%s may use %q", r.User(), s)
				}
			}
			// A consumer create on a stream must name the consumer: the
			// old form $JS.API.CONSUMER.CREATE.<stream> creates any.
			if rest, ok := strings.CutPrefix(s, "$JS.API.CONSUMER.CREATE."); ok && !strings.Contains(rest, ".") {
				t.Errorf("%s may use the unnamed consumer create %q", r.User(), s)
			}
		}
		for _, s := range p.Subscribe.Allow {
			if strings.HasPrefix(s, "_INBOX") && !strings.HasPrefix(s, r.InboxPrefix()+".") {
				t.Errorf("%s may read another inbox: %q", r.User(), s)
			}
		}
	}
}
