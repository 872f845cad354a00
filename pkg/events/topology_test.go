package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
)

func TestTopology(t *testing.T) {
	ctx := context.Background()
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	topo := events.Topology{}

	t.Run("EnsureIsIdempotent", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if err := topo.EnsureStreams(ctx, js); err != nil {
				t.Fatalf("ensure #%d: %v", i, err)
			}
			for _, st := range []string{events.StreamRequests, events.StreamTasks, events.StreamEvents} {
				if _, err := topo.EnsureConsumer(ctx, js, st); err != nil {
					t.Fatalf("consumer on %s #%d: %v", st, i, err)
				}
			}
		}
		for _, b := range topo.Buckets() {
			if _, err := events.Bucket(ctx, js, b.Bucket); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("SubjectsLandInTheirStreams", func(t *testing.T) {
		job, vault := events.NewID(), events.NewID()
		cases := map[string]string{
			events.SyncRequestedSubject(job):                                events.StreamRequests,
			events.VaultTaskSubject(job, vault):                             events.StreamTasks,
			events.JobEventSubject(job, events.KindJobFinished):             events.StreamEvents,
			events.VaultEventSubject(job, vault, events.KindVaultCompleted): events.StreamEvents,
			events.KeySubject(vault, "key-1"):                               events.StreamKeys,
		}
		for subj, stream := range cases {
			ack, err := js.Publish(ctx, subj, []byte("{}"))
			if err != nil {
				t.Fatalf("publish %s: %v", subj, err)
			}
			if ack.Stream != stream {
				t.Errorf("%s landed in %s, want %s", subj, ack.Stream, stream)
			}
		}
	})

	t.Run("KeysStreamKeepsOneRecordPerKey", func(t *testing.T) {
		vault := events.NewID()
		for i := 0; i < 3; i++ {
			if _, err := js.Publish(ctx, events.KeySubject(vault, "k"), []byte{byte('0' + i)}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := js.Stream(ctx, events.StreamKeys)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.VaultKeysFilter(vault)))
		if err != nil {
			t.Fatal(err)
		}
		if n := info.State.Subjects[events.KeySubject(vault, "k")]; n != 1 {
			t.Fatalf("messages for the key = %d, want 1", n)
		}
	})

	t.Run("TasksAreDedupedByMsgID", func(t *testing.T) {
		job, vault := events.NewID(), events.NewID()
		for i := 0; i < 2; i++ {
			ack, err := js.Publish(ctx, events.VaultTaskSubject(job, vault), []byte("{}"), jetstream.WithMsgID(job+"/"+vault))
			if err != nil {
				t.Fatal(err)
			}
			if ack.Duplicate != (i == 1) {
				t.Fatalf("publish #%d duplicate=%v", i, ack.Duplicate)
			}
		}
	})

	t.Run("ValidateRejectsShortDedupeWindow", func(t *testing.T) {
		err := events.Topology{DuplicateWindow: time.Minute}.Validate()
		if !errors.Is(err, events.ErrTopology) {
			t.Fatalf("err = %v, want ErrTopology", err)
		}
	})
}

func TestCloudEventRoundTrip(t *testing.T) {
	in := events.VaultResult{JobID: events.NewID(), VaultID: events.NewID(), Status: events.VaultCompleted, Listed: 3}
	raw, err := events.MarshalEvent("akvsync/test", events.KindVaultCompleted.Type("vault"), in.VaultID, in)
	if err != nil {
		t.Fatal(err)
	}
	var out events.VaultResult
	ev, err := events.DecodeEvent(raw, &out)
	if err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion != "1.0" || ev.Type != "io.akvsync.vault.completed" || ev.Subject != in.VaultID || ev.ID == "" {
		t.Fatalf("envelope = %+v", ev)
	}
	if out.JobID != in.JobID || out.Listed != 3 || out.Status != events.VaultCompleted {
		t.Fatalf("data = %+v, want %+v", out, in)
	}
	if _, err := events.DecodeEvent([]byte(`{"id":"x"}`), nil); !errors.Is(err, events.ErrBadEvent) {
		t.Fatalf("decode of a non-event: err = %v", err)
	}
}

func TestKeyIDIsStableAndCaseInsensitive(t *testing.T) {
	v := events.NewID()
	a, b := events.KeyID(v, "My-Key"), events.KeyID(v, "my-key")
	if a != b || len(a) != 36 || a[14] != '5' {
		t.Fatalf("KeyID: %q vs %q", a, b)
	}
	if events.KeyID(events.NewID(), "my-key") == a {
		t.Fatal("KeyID of another vault collides")
	}
}
