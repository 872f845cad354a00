package azure

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// throttlePolicy runs once per attempt (a per-retry policy), so retries are
// paced like first tries and every 429 reaches the throttle.
type throttlePolicy struct{ t Throttle }

func (p throttlePolicy) Do(req *policy.Request) (*http.Response, error) {
	if err := p.t.Wait(req.Raw().Context()); err != nil {
		return nil, err
	}
	resp, err := req.Next()
	if resp != nil {
		p.t.Observe(resp.StatusCode)
	}
	return resp, err
}
