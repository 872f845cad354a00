package connections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/pkg/events"
)

// Stages of a connection test at which Azure can fail.
const (
	// StageToken: Entra ID refused to issue a token.
	StageToken = "token"
	// StageList: Key Vault refused to list keys.
	StageList = "list"
	// StageTransport: no HTTP answer (DNS, TLS, timeout) or a client-side
	// check failed (such as challenge resource verification).
	StageTransport = "transport"
)

// TestResult is the outcome of [Registry.Test].
type TestResult struct {
	// ConnectionOK is true when a token was issued and a page of keys
	// listed.
	ConnectionOK bool `json:"connection_ok"`
	// ID and Name identify the connection tested.
	ID   string `json:"id"`
	Name string `json:"name"`
	// VaultURI is the vault whose keys were listed.
	VaultURI string `json:"vault_uri"`
	// KeysListed is the number of keys on the first page.
	KeysListed int `json:"keys_listed"`
	// DurationMS is how long the test took.
	DurationMS int64 `json:"duration_ms"`
	// Error is what Azure answered, verbatim, when ConnectionOK is false.
	Error *AzureError `json:"error,omitempty"`
}

// AzureError is an Azure failure as Azure reported it.
type AzureError struct {
	// Stage is [StageToken], [StageList] or [StageTransport].
	Stage string `json:"stage"`
	// Status is the HTTP status of Azure's answer (0 without one).
	Status int `json:"status,omitempty"`
	// Code is Azure's error code: Entra ID's "error" (invalid_client, …)
	// or Key Vault's error.code (Forbidden, Unauthorized, …).
	Code string `json:"error_code,omitempty"`
	// InnerCode is Key Vault's error.innererror.code (AccessDenied,
	// ForbiddenByRbac, …), if any.
	InnerCode string `json:"inner_error_code,omitempty"`
	// Message is Entra ID's error_description or Key Vault's
	// error.message, verbatim; for a transport failure, the error text.
	Message string `json:"message"`
}

// Test checks the connection with the given id or name against Azure: it
// acquires a token and lists one page of keys of a vault — req.VaultURI,
// else the first registered vault of the connection. Azure's refusal is
// not an error: the result carries it verbatim with ConnectionOK false.
// Errors wrap [ErrNotFound], [ErrInvalid] (a bad vault URI),
// [ErrUnprocessable] (no vault to list), [ErrCorrupt] or [ErrUnavailable].
func (r *Registry) Test(ctx context.Context, ref string, req TestRequest) (TestResult, error) {
	rec, rev, err := r.load(ctx, ref)
	if err != nil {
		return TestResult{}, err
	}
	uri := req.VaultURI
	if uri == "" {
		vaults, err := r.vaultsOf(ctx, rec.Name)
		if err != nil {
			return TestResult{}, err
		}
		if len(vaults) == 0 {
			return TestResult{}, apierr.New(ErrUnprocessable, "connection %s has no registered vault to test with; give vault_uri", rec.Name)
		}
		slices.SortFunc(vaults, func(a, b events.Vault) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.QualifiedName(), b.QualifiedName())
		})
		uri = vaults[0].VaultURI
	}
	if err := azure.CheckVaultURI(uri); err != nil {
		return TestResult{}, invalidf("vault_uri must be an https URL with no path")
	}
	if err := r.cfg.Endpoints.CheckURL("vault_uri", azure.EndpointVault, uri, rec.CloudName, rec.KeyVaultDNSSuffix, rec.AzureStackConnectionType); err != nil {
		return TestResult{}, invalidf("%s", endpointProblem(err))
	}
	conn, err := r.decrypt(rec, rev)
	if err != nil {
		return TestResult{}, err
	}
	if req.VaultURI != "" {
		if err := r.allowedTestTarget(ctx, conn, uri); err != nil {
			return TestResult{}, err
		}
	}
	// A factory of its own: no credential or token cached by the workers
	// (or an earlier test) hides what Azure says now.
	f, err := azure.NewFactory(r.cfg.Azure)
	if err != nil {
		return TestResult{}, fmt.Errorf("connections: %w", err)
	}
	defer f.Forget(conn.Name)
	res := TestResult{ID: rec.ID, Name: rec.Name, VaultURI: uri}
	start := time.Now()
	client, err := f.KeysClient(conn, uri, nil)
	if err != nil {
		return TestResult{}, invalidf("connection %s cannot be used: %v", rec.Name, err)
	}
	tctx, cancel := context.WithTimeout(ctx, r.cfg.TestTimeout)
	defer cancel()
	pager := client.NewListKeyPropertiesPager(nil)
	resp, err := pager.NextPage(tctx)
	res.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		if ctx.Err() != nil {
			return TestResult{}, unavailable("test connection "+rec.Name, ctx.Err())
		}
		res.Error = describeAzureError(err)
		r.recordTest(ctx, rec.ID, false, res.Error.summary())
		r.cfg.Logger.Info().Str("connection_id", rec.ID).Str("connection", rec.Name).Str("vault_uri", uri).
			Str("stage", res.Error.Stage).Int("status", res.Error.Status).Str("error_code", res.Error.Code).
			Msg("connection test failed")
		return res, nil
	}
	res.ConnectionOK = true
	res.KeysListed = len(resp.Value)
	r.recordTest(ctx, rec.ID, true, "")
	r.cfg.Logger.Info().Str("connection_id", rec.ID).Str("connection", rec.Name).Str("vault_uri", uri).
		Int("keys_listed", res.KeysListed).Msg("connection test succeeded")
	return res, nil
}

// describeAzureError extracts what Azure said from an SDK error.
func describeAzureError(err error) *AzureError {
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		ae := &AzureError{Stage: StageToken, Message: err.Error()}
		if afe.RawResponse != nil {
			ae.Status = afe.RawResponse.StatusCode
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if b, perr := runtime.Payload(afe.RawResponse); perr == nil && json.Unmarshal(b, &body) == nil && body.Error != "" {
				ae.Code, ae.Message = body.Error, body.Description
			}
		}
		return ae
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		ae := &AzureError{Stage: StageList, Status: re.StatusCode, Code: re.ErrorCode, Message: err.Error()}
		if re.RawResponse != nil {
			var body struct {
				Error struct {
					Code       string `json:"code"`
					Message    string `json:"message"`
					InnerError *struct {
						Code string `json:"code"`
					} `json:"innererror"`
				} `json:"error"`
			}
			if b, perr := runtime.Payload(re.RawResponse); perr == nil && json.Unmarshal(b, &body) == nil && body.Error.Message != "" {
				ae.Message = body.Error.Message
				if body.Error.Code != "" {
					ae.Code = body.Error.Code
				}
				if body.Error.InnerError != nil {
					ae.InnerCode = body.Error.InnerError.Code
				}
			} else if ae.Status != 0 {
				ae.Message = http.StatusText(ae.Status)
			}
		}
		return ae
	}
	return &AzureError{Stage: StageTransport, Message: err.Error()}
}

// allowedTestTarget refuses to send the connection's token to a host that
// is neither a registered vault nor a vault or Managed HSM pool of the
// connection's cloud: the test endpoint must not make the API call
// arbitrary hosts.
func (r *Registry) allowedTestTarget(ctx context.Context, conn azure.Connection, uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return invalidf("vault_uri must be an https URL with no path")
	}
	host := strings.ToLower(u.Hostname())
	if strings.HasSuffix(host, "."+strings.ToLower(conn.VaultDNSSuffix())) {
		return nil
	}
	if hsm := conn.ManagedHSMDNSSuffix(); hsm != "" && strings.HasSuffix(host, "."+hsm) {
		return nil
	}
	all, err := events.ListVaults(ctx, r.vaults)
	if err != nil {
		return unavailable("read vaults", err)
	}
	want := strings.TrimSuffix(strings.ToLower(uri), "/")
	for _, v := range all {
		if strings.TrimSuffix(strings.ToLower(v.VaultURI), "/") == want {
			return nil
		}
	}
	if hsm := conn.ManagedHSMDNSSuffix(); hsm != "" {
		return invalidf("vault_uri must be a registered vault, a vault under %s or a Managed HSM pool under %s", conn.VaultDNSSuffix(), hsm)
	}
	return invalidf("vault_uri must be a registered vault or a vault under %s", conn.VaultDNSSuffix())
}

// MaxLastConnectionError bounds the last_connection_error a test records.
const MaxLastConnectionError = 512

// summary is the one-line last_connection_error of a failed test.
func (e *AzureError) summary() string {
	msg := e.Stage + ": "
	if e.Status != 0 {
		msg += fmt.Sprintf("%d ", e.Status)
	}
	if e.Code != "" {
		msg += e.Code + ": "
	}
	msg += e.Message
	msg, _, _ = strings.Cut(msg, "\n")
	if len(msg) > MaxLastConnectionError {
		msg = strings.ToValidUTF8(msg[:MaxLastConnectionError], "") + "…"
	}
	return msg
}

// recordTest stores the outcome of a connection test on the record
// (last_connection_ok, _error, _at), with compare-and-set. It is best
// effort: a failure is logged, and the test's answer stands.
func (r *Registry) recordTest(ctx context.Context, id string, ok bool, msg string) {
	ctx, cancel := cleanupContext(ctx, r.cfg.CleanupTimeout)
	defer cancel()
	now := r.now()
	_, _, err := r.update(ctx, id, "record the connection test", func(rec *record) error {
		rec.LastConnectionOK, rec.LastConnectionError, rec.LastConnectionAt = ok, msg, &now
		return nil
	})
	if err != nil {
		r.cfg.Logger.Warn().Err(err).Str("connection_id", id).Msg("cannot record the connection test")
	}
}
