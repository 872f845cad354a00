package httpapi_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/pkg/events"
)

func TestParseCreateJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body    string
		want    control.CreateJobRequest
		wantErr error
	}{
		{`{"key_vaults":["a","b::s"]}`, control.CreateJobRequest{KeyVaults: []string{"a", "b::s"}}, nil},
		{` {"synchronize_all":true} `, control.CreateJobRequest{SynchronizeAll: true}, nil},
		{`{"synchronize_all":true,"take_cloud_key_backup":false}`, control.CreateJobRequest{SynchronizeAll: true}, nil},
		{`{"synchronize_all":true,"take_cloud_key_backup":true}`, control.CreateJobRequest{}, control.ErrUnprocessable},
		{`{"key_vaults":["a"],"synchronize_all":true}`, control.CreateJobRequest{}, control.ErrInvalid},
		{`{"key_vaults":[]}`, control.CreateJobRequest{}, control.ErrInvalid},
		{`{"key_vaults":["a","A"]}`, control.CreateJobRequest{}, control.ErrInvalid},
		{`{"key_vaults":[null]}`, control.CreateJobRequest{}, control.ErrInvalid},
		{`{"x":1}`, control.CreateJobRequest{}, control.ErrInvalid},
		{`null`, control.CreateJobRequest{}, control.ErrInvalid},
		{`{"synchronize_all":true} x`, control.CreateJobRequest{}, control.ErrInvalid},
		{strings.Repeat(" ", 200) + `{"synchronize_all":true}`, control.CreateJobRequest{}, httpapi.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got, err := httpapi.ParseCreateJob(strings.NewReader(tt.body), 128)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseCreateJob = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseKeyQuery(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		query   string
		want    events.KeyQuery
		wantErr string
	}{
		{"", events.KeyQuery{Limit: events.DefaultLimit}, ""},
		{"key_vault=v1::s&key_name=k1&kid=https://v1.vault.azure.net/keys/k1&enabled=TRUE&gone=false&key_size=2048&skip=5&limit=-1&sort=-updatedAt&id=x&key_vault_id=y",
			events.KeyQuery{KeyVault: "v1::s", KeyName: "k1", Kid: "https://v1.vault.azure.net/keys/k1", Enabled: &yes, Gone: &no, KeySize: 2048, Skip: 5, Limit: -1, Sort: "-updatedAt", ID: "x", VaultID: "y"}, ""},
		{"sort=key_name", events.KeyQuery{Limit: 10, Sort: "key_name"}, ""},
		{"enabled=maybe", events.KeyQuery{}, "enabled"},
		{"key_size=abc", events.KeyQuery{}, "key_size"},
		{"key_size=99999", events.KeyQuery{}, "key_size"},
		{"limit=-5", events.KeyQuery{}, "limit"},
		{"skip=x", events.KeyQuery{}, "skip"},
		{"sort=bogus", events.KeyQuery{}, "sort"},
		{"sort=--createdAt", events.KeyQuery{}, "sort"},
		{"kid=a&kid=b", events.KeyQuery{}, "kid"},
		{"cloud_name=AzureCloud", events.KeyQuery{}, "cloud_name"},
		{"key_name=" + strings.Repeat("a", httpapi.MaxParamLen+1), events.KeyQuery{}, "key_name"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := httpapi.ParseKeyQuery(v)
			if tt.wantErr != "" {
				if !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseKeyQuery = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseJobQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query   string
		want    events.JobQuery
		wantErr string
	}{
		{"", events.JobQuery{Limit: 10}, ""},
		{"id=j1&overall_status=failed&skip=2&limit=3&sort=-createdAt", events.JobQuery{ID: "j1", OverallStatus: events.JobFailed, Skip: 2, Limit: 3}, ""},
		{"key_vaults=a,b::s&key_vaults=c&key_vaults=a,,", events.JobQuery{KeyVaults: []string{"a", "b::s", "c"}, Limit: 10}, ""},
		{"overall_status=cancelled", events.JobQuery{}, "overall_status"},
		{"overall_status=in+progress", events.JobQuery{OverallStatus: events.JobInProgress, Limit: 10}, ""},
		{"overall_status=in%20progress", events.JobQuery{OverallStatus: events.JobInProgress, Limit: 10}, ""},
		{"overall_status=in_progress", events.JobQuery{OverallStatus: events.JobInProgress, Limit: 10}, ""},
		{"overall_status=In+Progress", events.JobQuery{}, "overall_status"},
		{"sort=createdAt", events.JobQuery{}, "sort"},
		{"limit=-5", events.JobQuery{}, "limit"},
		{"id=a&id=b", events.JobQuery{}, "id"},
		{"vault=x", events.JobQuery{}, "vault"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			got, err := httpapi.ParseJobQuery(v)
			if tt.wantErr != "" {
				if !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseJobQuery = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// The fuzz targets check that the parsers never panic, that errors are
// always client errors, and that accepted input satisfies the invariants.
// Their seeds run in every `go test`.

func FuzzParseCreateJob(f *testing.F) {
	for _, s := range []string{
		`{"key_vaults":["a"]}`, `{"synchronize_all":true}`, `{"key_vaults":[],"synchronize_all":true}`,
		`{"key_vaults":["a","a"]}`, `{"take_cloud_key_backup":true}`, `[]`, `null`, ``, `{"key_vaults":[1]}`,
		`{"key_vaults":["\u0000"]}`, `{"synchronize_all":true}{}`, `{"KEY_VAULTS":["a"]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := httpapi.ParseCreateJob(strings.NewReader(body), 1024)
		if err != nil {
			if !errors.Is(err, control.ErrInvalid) && !errors.Is(err, control.ErrUnprocessable) && !errors.Is(err, httpapi.ErrBodyTooLarge) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		if (req.KeyVaults != nil) == req.SynchronizeAll {
			t.Fatalf("accepted %q: want exactly one of key_vaults and synchronize_all", body)
		}
		if req.KeyVaults != nil && len(req.KeyVaults) == 0 || req.TakeCloudKeyBackup {
			t.Fatalf("accepted %q as %+v", body, req)
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted request fails Validate: %v", err)
		}
	})
}

func FuzzParseKeyQuery(f *testing.F) {
	for _, s := range []string{"", "enabled=true&limit=-1", "key_size=2048&sort=-createdAt", "limit=-5", "sort=bogus", "a=b", "skip=99999999999999999999", "enabled=maybe&enabled=true"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		q, err := httpapi.ParseKeyQuery(v)
		if err != nil {
			if !errors.Is(err, control.ErrInvalid) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		if q.Skip < 0 || q.Limit == 0 || q.Limit < events.LimitAll || q.KeySize < 0 || q.KeySize > httpapi.MaxKeySize {
			t.Fatalf("accepted %q as %+v", query, q)
		}
	})
}

func FuzzParseJobQuery(f *testing.F) {
	for _, s := range []string{"", "overall_status=completed", "key_vaults=a,b&key_vaults=c", "limit=-1&skip=3", "sort=-createdAt", "overall_status=x", "key_vaults=,,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		q, err := httpapi.ParseJobQuery(v)
		if err != nil {
			if !errors.Is(err, control.ErrInvalid) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		if q.Skip < 0 || q.Limit == 0 || q.Limit < events.LimitAll || len(q.KeyVaults) > httpapi.MaxFilterVaults {
			t.Fatalf("accepted %q as %+v", query, q)
		}
		for _, kv := range q.KeyVaults {
			if kv == "" || strings.Contains(kv, ",") {
				t.Fatalf("bad vault filter %q from %q", kv, query)
			}
		}
	})
}
