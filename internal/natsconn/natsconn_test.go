package natsconn

import (
	"fmt"
	"net"
	"testing"

	"github.com/nats-io/nats.go"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestEmbeddedNATS(t *testing.T) {
	t.Run("ListensNowhereByDefault", func(t *testing.T) {
		s, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown()
		if addr := s.Addr(); addr != nil {
			t.Fatalf("embedded NATS listens on %v", addr)
		}
		nc, err := ConnectInProcess(s, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.JetStream(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("WhenAskedToListenItRequiresCredentials", func(t *testing.T) {
		port := freePort(t)
		s, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Listen: fmt.Sprintf("127.0.0.1:%d", port), User: "akv", Password: "pw-123456"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown()
		url := fmt.Sprintf("nats://127.0.0.1:%d", port)

		if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Fatal("connected without credentials")
		}
		if nc, err := nats.Connect(url, nats.UserInfo("akv", "wrong"), nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Fatal("connected with a wrong password")
		}
		nc, err := nats.Connect(url, nats.UserInfo("akv", "pw-123456"))
		if err != nil {
			t.Fatalf("the right credentials were refused: %v", err)
		}
		nc.Close()
		// In-process connections (the API's and the worker's) need the
		// credentials too, and work with them.
		ipc, err := ConnectInProcess(s, "test", nats.UserInfo("akv", "pw-123456"))
		if err != nil {
			t.Fatal(err)
		}
		ipc.Close()
	})
}

func TestEmbeddedNATSAllowsLargeJobRecords(t *testing.T) {
	s, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := ConnectInProcess(s, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != EmbeddedMaxPayload {
		t.Fatalf("max payload %d, want %d", got, EmbeddedMaxPayload)
	}
}
