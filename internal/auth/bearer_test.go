package auth

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFromRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string
		want    string
		wantErr error
	}{
		{name: "bearer token", headers: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "scheme is case insensitive", headers: []string{"bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "extra spaces", headers: []string{"Bearer   abc.def.ghi  "}, want: "abc.def.ghi"},
		{name: "no header", wantErr: ErrTokenMissing},
		{name: "scheme without token", headers: []string{"Bearer"}, wantErr: ErrTokenMissing},
		{name: "scheme with blank token", headers: []string{"Bearer   "}, wantErr: ErrTokenMissing},
		{name: "basic auth", headers: []string{"Basic YWxpY2U6cHc="}, wantErr: ErrTokenMalformed},
		{name: "two headers", headers: []string{"Bearer a.b.c", "Bearer d.e.f"}, wantErr: ErrTokenMalformed},
		{name: "bad characters", headers: []string{"Bearer a.b.c;drop"}, wantErr: ErrTokenMalformed},
		{name: "too long", headers: []string{"Bearer " + strings.Repeat("a", maxTokenLen+1)}, wantErr: ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/cckm/azure/keys", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := FromRequest(r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestPrincipalContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, ok := PrincipalFrom(ctx); ok {
		t.Fatal("principal in empty context")
	}
	want := Principal{Username: "alice", Role: RoleAdmin}
	got, ok := PrincipalFrom(WithPrincipal(ctx, want))
	if !ok || got != want {
		t.Fatalf("got %+v %v", got, ok)
	}
}
