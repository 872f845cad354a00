package connections_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
)

func TestParseCreate(t *testing.T) {
	req, err := connections.ParseCreate(strings.NewReader(`{"name":"prod","tenant_id":"t1","client_id":"c1","client_secret":"`+testSecret+`","labels":{"a":"b"}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if req.Name != "prod" || req.ClientSecret != testSecret || req.CredentialType != azure.CredentialClientSecret ||
		req.CloudName != azure.CloudPublic || !reflect.DeepEqual(req.Products, []string{"cckm"}) || req.Labels["a"] != "b" {
		t.Fatalf("parsed %+v", req)
	}
	cases := []struct{ body, want string }{
		{``, "a JSON request body is required"},
		{`[]`, "must be a JSON object"},
		{`{"name":5}`, "name must be a string, not number"},
		{`{"labels":["x"]}`, "labels must be an object, not array"},
		{`{"products":"cckm"}`, "products must be an array of strings, not string"},
		{`{"disable_challenge_resource_verification":"yes"}`, "disable_challenge_resource_verification must be a boolean, not string"},
		{`{"client_secret":42}`, "client_secret must be a string, not number"},
		{`{"name":"x","password":"y"}`, `unknown field "password"`},
		{`{"name":"x"} {}`, "single JSON object"},
		{`{"name":"x",`, "truncated"},
		{`{"name":}`, "not valid JSON"},
		{`{"name":"prod","tenant_id":"t","client_id":"c"}`, "client_secret is required"},
	}
	for _, tc := range cases {
		_, err := connections.ParseCreate(strings.NewReader(tc.body), 0)
		if !errors.Is(err, connections.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.body, err, tc.want)
		}
	}
	if _, err := connections.ParseCreate(strings.NewReader(`{"name":"`+strings.Repeat("a", 100)+`"}`), 50); !errors.Is(err, connections.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	// A type error on a secret does not quote it.
	_, err = connections.ParseCreate(strings.NewReader(`{"client_secret":["`+testSecret+`"]}`), 0)
	if err == nil || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("secret in error: %v", err)
	}
}

func TestParsePatch(t *testing.T) {
	p, err := connections.ParsePatch(strings.NewReader(`{"description":"","client_secret":"new","labels":null,"products":["cckm"]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Description == nil || *p.Description != "" || p.ClientSecret == nil || *p.ClientSecret != "new" || p.Labels != nil || p.Products == nil {
		t.Fatalf("parsed %+v", p)
	}
	if strings.Contains(p.String(), "new\"") || !strings.Contains(p.String(), "client_secret") {
		t.Fatalf("String: %s", p)
	}
	for body, want := range map[string]string{
		`{}`:                   "changes nothing",
		`{"client_secret":""}`: "changes nothing",
		`{"certificate":""}`:   "changes nothing",
		`{"name":""}`:          "changes nothing",
		`{"is_certificate_used":true,"client_secret":"s"}`: "mutually exclusive",
		`{"name":"bad name"}`:                              "not a valid connection name",
		`{"tenant_id":1}`:                                  "tenant_id must be a string",
		`{"cloud":"AzureCloud"}`:                           `unknown field "cloud"`,
	} {
		if _, err := connections.ParsePatch(strings.NewReader(body), 0); !errors.Is(err, connections.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", body, err, want)
		}
	}
	if tr, err := connections.ParseTest(strings.NewReader(""), 0); err != nil || tr.VaultURI != "" {
		t.Fatalf("empty test body: %+v %v", tr, err)
	}
	if tr, err := connections.ParseTest(strings.NewReader(`{"vault_uri":"https://v.vault.azure.net"}`), 0); err != nil || tr.VaultURI == "" {
		t.Fatalf("test body: %+v %v", tr, err)
	}
}

// checkParseErr is the error property of both parsers: an error wraps
// ErrInvalid or ErrTooLarge.
func checkParseErr(t *testing.T, err error) {
	if !errors.Is(err, connections.ErrInvalid) && !errors.Is(err, connections.ErrTooLarge) {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
}

func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{
		`{"name":"prod","tenant_id":"t1","client_id":"c1","client_secret":"s"}`,
		`{"name":"mi","credential_type":"managed_identity"}`,
		`{"name":"st","tenant_id":"t","client_id":"c","client_secret":"s","cloud_name":"AzureStack","active_directory_endpoint":"https://login.local","key_vault_dns_suffix":"vault.local"}`,
		`{"name":"x","labels":{"a":"b"},"products":["cckm","ddc"],"description":"d"}`,
		`{"name":5}`, `{"name":"a","x":1}`, `[]`, `null`, ``, `{"name":"a"}{}`, `{"labels":{"":""}}`,
		`{"certificate":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := connections.ParseCreate(strings.NewReader(body), 4096)
		if err != nil {
			checkParseErr(t, err)
			return
		}
		// A parsed request is normalized and round-trips.
		if req.Name == "" || req.CredentialType == "" || req.CloudName == "" || len(req.Products) == 0 {
			t.Fatalf("not normalized: %v", req)
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := connections.ParseCreate(strings.NewReader(string(b)), 1<<20)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed %v into %v", req, again)
		}
		if strings.Contains(req.String(), req.ClientSecret) && req.ClientSecret != "" && len(req.ClientSecret) > 8 {
			t.Fatalf("String leaks the secret")
		}
	})
}

func FuzzParsePatch(f *testing.F) {
	for _, s := range []string{
		`{"description":"d"}`, `{"client_secret":"new"}`, `{"labels":null}`, `{"labels":{"a":"b"}}`,
		`{"products":[]}`, `{"disable_challenge_resource_verification":true}`, `{"name":"prod"}`,
		`{}`, `{"client_secret":""}`, `{"tenant_id":1}`, `{"nope":1}`, `[1]`, `"x"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		p, err := connections.ParsePatch(strings.NewReader(body), 4096)
		if err != nil {
			checkParseErr(t, err)
			return
		}
		// A parsed patch sets something, and round-trips.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := connections.ParsePatch(strings.NewReader(string(b)), 1<<20)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("round trip changed %v into %v", p, again)
		}
	})
}
