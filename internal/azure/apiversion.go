package azure

import (
	"context"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// KeySizeAPIVersion is the first Key Vault api-version whose JWK of a symmetric
// (oct-HSM) key carries key_size. Earlier versions, the SDK's default among them,
// return no size for symmetric keys: their material is never returned.
const KeySizeAPIVersion = "2026-01-01-preview"

type apiVersionKey struct{}

// WithAPIVersion makes the Key Vault requests sent with ctx (by a client of this
// package's Factory) use api-version v instead of the SDK's.
func WithAPIVersion(ctx context.Context, v string) context.Context {
	return context.WithValue(ctx, apiVersionKey{}, v)
}

// apiVersionPolicy rewrites the api-version query parameter of a request whose
// context carries one (WithAPIVersion).
type apiVersionPolicy struct{}

func (apiVersionPolicy) Do(req *policy.Request) (*http.Response, error) {
	if v, ok := req.Raw().Context().Value(apiVersionKey{}).(string); ok && v != "" {
		u := req.Raw().URL
		q := u.Query()
		q.Set("api-version", v)
		u.RawQuery = q.Encode()
	}
	return req.Next()
}
