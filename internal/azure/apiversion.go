package azure

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// apiVersionPolicy rewrites the api-version query parameter of a request whose
// context carries one (akvsync.WithAPIVersion).
type apiVersionPolicy struct{}

func (apiVersionPolicy) Do(req *policy.Request) (*http.Response, error) {
	if v := akvsync.APIVersion(req.Raw().Context()); v != "" {
		u := req.Raw().URL
		q := u.Query()
		q.Set("api-version", v)
		u.RawQuery = q.Encode()
	}
	return req.Next()
}
