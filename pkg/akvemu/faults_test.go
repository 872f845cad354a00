package akvemu_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

func TestThrottling(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "throttled", Keys: 5})
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	token := vaultToken(t, cred)
	name := v.Keys()[0].Name
	ctx := context.Background()
	set := func(t *testing.T, f akvemu.Faults) {
		t.Helper()
		if err := e.SetFaults(v.Name(), f); err != nil {
			t.Fatal(err)
		}
		v.ResetCounters()
	}

	t.Run("a 429 without Retry-After is retried with backoff", func(t *testing.T) {
		set(t, akvemu.Faults{ThrottleNext: 1, OmitRetryAfter: true})
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys/"+name+"/?api-version=2025-07-01", token, nil)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "" ||
			string(body) != `{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}` {
			t.Fatalf("raw 429: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		set(t, akvemu.Faults{ThrottleNext: 2, OmitRetryAfter: true})
		if _, err := newClientWith(t, e, v.URL(), cred, nil).GetKey(ctx, name, "", nil); err != nil {
			t.Fatalf("SDK did not recover from 429s: %v", err)
		}
		if c := v.Counters(); c.Count(akvemu.OpGetKey, 429) != 2 || c.Count(akvemu.OpGetKey, 200) != 1 {
			t.Errorf("counters %v", c.ByOperation)
		}
	})

	t.Run("a 429 with Retry-After is honoured", func(t *testing.T) {
		set(t, akvemu.Faults{ThrottleNext: 1, RetryAfterSeconds: 1})
		retry := policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Second}
		c := newClientWith(t, e, v.URL(), cred, &retry)
		if _, err := c.GetKey(ctx, name, "", nil); err != nil { // warm up: challenge + token
			t.Logf("warm-up: %v", err)
		}
		set(t, akvemu.Faults{ThrottleNext: 1, RetryAfterSeconds: 1})
		start := time.Now()
		if _, err := c.GetKey(ctx, name, "", nil); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("retried after %s, want at least the 1 s Retry-After", took)
		}
		if cnt := v.Counters(); cnt.Count(akvemu.OpGetKey, 429) != 1 || cnt.Count(akvemu.OpGetKey, 200) != 1 {
			t.Errorf("counters %v", cnt.ByOperation)
		}
	})

	t.Run("persistent throttling ends in Throttled after the SDK's retries", func(t *testing.T) {
		set(t, akvemu.Faults{ThrottleRate: 1, OmitRetryAfter: true})
		_, err := newClientWith(t, e, v.URL(), cred, nil).GetKey(ctx, name, "", nil)
		if re := responseError(t, err); re.StatusCode != http.StatusTooManyRequests || re.ErrorCode != "Throttled" {
			t.Errorf("final error %d %s", re.StatusCode, re.ErrorCode)
		}
		// The first attempt is the unauthenticated challenge probe (401); the policy's
		// 1+3 authorized attempts are all throttled.
		if got := v.Counters().Count(akvemu.OpGetKey, 429); got != 1+int64(fastRetry.MaxRetries) {
			t.Errorf("%d throttled attempts, want %d", got, 1+fastRetry.MaxRetries)
		}
	})

	t.Run("the token bucket limits requests per 10 s", func(t *testing.T) {
		set(t, akvemu.Faults{ThrottleLimit: 5})
		for i := range 6 {
			resp, _ := rawDo(t, e, http.MethodGet, v.URL()+"/keys/"+name+"/?api-version=7.6", token, nil)
			want := http.StatusOK
			if i == 5 {
				want = http.StatusTooManyRequests
			}
			if resp.StatusCode != want {
				t.Fatalf("request %d: %d, want %d", i+1, resp.StatusCode, want)
			}
			if i == 5 && resp.Header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q, want 2 (one token per 2 s)", resp.Header.Get("Retry-After"))
			}
		}
	})
	set(t, akvemu.Faults{})
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "flaky", Keys: 40})
	retry := policy.RetryOptions{MaxRetries: 12, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond}
	c := newClient(t, e, v, &retry)
	ctx := context.Background()

	t.Run("a 503 rate is absorbed by retries", func(t *testing.T) {
		if err := v.SetFaults(akvemu.Faults{ErrorRate: 0.3, ErrorStatus: 503}); err != nil {
			t.Fatal(err)
		}
		for _, k := range v.Keys() {
			if _, err := c.GetKey(ctx, k.Name, "", nil); err != nil {
				t.Fatalf("get %s: %v", k.Name, err)
			}
		}
		cnt := v.Counters()
		if cnt.Count(akvemu.OpGetKey, 503) == 0 || cnt.Count(akvemu.OpGetKey, 200) != 40 {
			t.Errorf("counters %v", cnt.ByOperation)
		}
	})

	t.Run("a vault that always fails returns 500 after retries", func(t *testing.T) {
		if err := v.SetFaults(akvemu.Faults{ErrorRate: 1, ErrorStatus: 500}); err != nil {
			t.Fatal(err)
		}
		v.ResetCounters()
		_, err := newClient(t, e, v, nil).GetKey(ctx, v.Keys()[0].Name, "", nil)
		if re := responseError(t, err); re.StatusCode != http.StatusInternalServerError || re.ErrorCode != "InternalServerError" {
			t.Errorf("%d %s", re.StatusCode, re.ErrorCode)
		}
		if got := v.Counters().Count(akvemu.OpGetKey, 500); got != 1+int64(fastRetry.MaxRetries) {
			t.Errorf("%d attempts answered 500", got)
		}
	})

	t.Run("latency is added", func(t *testing.T) {
		if err := v.SetFaults(akvemu.Faults{Latency: 60 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := c.GetKey(ctx, v.Keys()[0].Name, "", nil); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 60*time.Millisecond {
			t.Errorf("took %s", took)
		}
	})
}

func TestDroppedConnections(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "droppy", Keys: 30})
	ctx := context.Background()

	t.Run("a drop rate is absorbed by retries", func(t *testing.T) {
		retry := policy.RetryOptions{MaxRetries: 12, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond}
		c := newClient(t, e, v, &retry)
		if err := v.SetFaults(akvemu.Faults{DropRate: 0.3}); err != nil {
			t.Fatal(err)
		}
		for _, k := range v.Keys() {
			if _, err := c.GetKey(ctx, k.Name, "", nil); err != nil {
				t.Fatalf("get %s: %v", k.Name, err)
			}
		}
		if cnt := v.Counters(); cnt.Count(akvemu.OpGetKey, akvemu.StatusDropped) == 0 || cnt.Count(akvemu.OpGetKey, 200) != 30 {
			t.Errorf("counters %v", cnt.ByOperation)
		}
	})

	t.Run("a vault dropping everything yields a transport error", func(t *testing.T) {
		if err := v.SetFaults(akvemu.Faults{DropRate: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := newClient(t, e, v, nil).GetKey(ctx, v.Keys()[0].Name, "", nil)
		var re *azcore.ResponseError
		if err == nil || errors.As(err, &re) {
			t.Errorf("want a transport error, got %v", err)
		}
	})
}

func TestUnreachableVault(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "gone", Keys: 3})
	c := newClient(t, e, v, nil)
	ctx := context.Background()
	name := v.Keys()[0].Name
	if _, err := c.GetKey(ctx, name, "", nil); err != nil {
		t.Fatal(err)
	}

	t.Run("connections are refused while unreachable", func(t *testing.T) {
		if err := e.SetFaults("gone", akvemu.Faults{Unreachable: true}); err != nil {
			t.Fatal(err)
		}
		_, err := c.GetKey(ctx, name, "", nil)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("want connection refused, got %v", err)
		}
	})

	t.Run("the same URL works again once cleared", func(t *testing.T) {
		if err := e.SetFaults("gone", akvemu.Faults{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, name, "", nil); err != nil {
			t.Errorf("after clearing: %v", err)
		}
	})

	t.Run("a vault can start unreachable", func(t *testing.T) {
		dead := addVault(t, e, akvemu.VaultSpec{Name: "born-dead", Faults: &akvemu.Faults{Unreachable: true}})
		_, err := newClient(t, e, dead, nil).GetKey(ctx, "k", "", nil)
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("want refused, got %v", err)
		}
	})
}
