package events_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

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

// TestShippedNATSConfigs parses every nats-server configuration of deploy/
// as nats-server does (nats-server -t), and checks that it declares
// exactly the users of events.Roles with their permissions.
func TestShippedNATSConfigs(t *testing.T) {
	for _, r := range events.Roles() {
		t.Setenv(r.PasswordEnv(), "test-"+string(r))
	}
	for k, v := range map[string]string{
		"AKVSYNC_NATS_NAME": "n1", "AKVSYNC_NATS_HOST": "127.0.0.1", "AKVSYNC_NATS_PORT": "4222",
		"AKVSYNC_NATS_HTTP_PORT": "8222", "AKVSYNC_NATS_CLUSTER_PORT": "6222",
		"AKVSYNC_NATS_ROUTE_1": "nats-route://127.0.0.1:6222", "AKVSYNC_NATS_ROUTE_2": "nats-route://127.0.0.1:6223",
		"AKVSYNC_NATS_ROUTE_3": "nats-route://127.0.0.1:6224", "AKVSYNC_NATS_STORE_DIR": t.TempDir(),
	} {
		t.Setenv(k, v)
	}
	for _, name := range []string{"jetstream.conf", "cluster.conf"} {
		t.Run(name, func(t *testing.T) {
			opts, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", name))
			if err != nil {
				t.Fatal(err)
			}
			if name == "cluster.conf" && len(opts.Routes) != 3 {
				t.Errorf("%d routes, want 3", len(opts.Routes))
			}
			users := map[string]*server.User{}
			for _, u := range opts.Users {
				users[u.Username] = u
			}
			if len(users) != len(events.Roles()) {
				t.Errorf("%d users, want %d", len(users), len(events.Roles()))
			}
			for _, r := range events.Roles() {
				u := users[r.User()]
				if u == nil {
					t.Errorf("no user %s", r.User())
					continue
				}
				if u.Password != "test-"+string(r) {
					t.Errorf("%s: password not from %s", r.User(), r.PasswordEnv())
				}
				p := r.Permissions()
				if !slices.Equal(u.Permissions.Publish.Allow, p.Publish.Allow) || !slices.Equal(u.Permissions.Publish.Deny, p.Publish.Deny) ||
					!slices.Equal(u.Permissions.Subscribe.Allow, p.Subscribe.Allow) || (u.Permissions.Response != nil) != p.AllowResponses {
					t.Errorf("%s: the shipped permissions differ from events.Role.Permissions", r.User())
				}
			}
		})
	}
}
