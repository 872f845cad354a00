package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/jsonbody"
	"github.com/akvsync/akvsync/pkg/events"
)

// Limits of query parameters.
const (
	// MaxParamLen bounds the value of one query parameter.
	MaxParamLen = 2048
	// MaxFilterVaults bounds the vaults of the jobs list's key_vaults filter.
	MaxFilterVaults = 100
	// MaxKeySize bounds the key_size filter (bits).
	MaxKeySize = 16384
)

// invalid returns an error for a bad request, wrapping control.ErrInvalid
// so one mapping serves parsers and the control plane.
func invalid(format string, args ...any) error {
	return apierr.New(control.ErrInvalid, format, args...)
}

// ParseCreateJob decodes and validates the body of POST
// /cckm/azure/synchronization-jobs, of at most max bytes (max <= 0:
// [DefaultMaxBodyBytes]). The body must be one JSON object with only the
// fields key_vaults, synchronize_all and take_cloud_key_backup, of the
// right types; then [control.CreateJobRequest.Validate] applies. Errors
// wrap [ErrBodyTooLarge], control.ErrInvalid or control.ErrUnprocessable.
func ParseCreateJob(r io.Reader, max int64) (control.CreateJobRequest, error) {
	var req control.CreateJobRequest
	if err := decodeBody(r, max, &req); err != nil {
		return control.CreateJobRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return control.CreateJobRequest{}, err
	}
	return req, nil
}

// ParseAddVaults decodes the body of POST /cckm/azure/add-vaults, of at
// most max bytes: the Azure vault objects as ARM returns them. A field
// neither CCKM nor Azure documents is refused, naming it (see
// control.VaultProperties). The registry validates the values.
func ParseAddVaults(r io.Reader, max int64) (control.AddVaultsRequest, error) {
	var req control.AddVaultsRequest
	if err := decodeBody(r, max, &req); err != nil {
		return control.AddVaultsRequest{}, err
	}
	return req, nil
}

// ParseVaultPatch decodes the body of PATCH /cckm/azure/vaults/{id}, of at
// most max bytes: connection, cloud_key_backup_limit and (unchanged) name;
// any other field is refused, naming it. The registry validates the values.
func ParseVaultPatch(r io.Reader, max int64) (control.VaultPatch, error) {
	var p control.VaultPatch
	if err := decodeBody(r, max, &p); err != nil {
		return control.VaultPatch{}, err
	}
	return p, nil
}

// decodeBody reads at most max bytes of one JSON object into v, strictly
// (see jsonbody.Decode), mapping its errors to this package's.
func decodeBody(r io.Reader, max int64, v any) error {
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	var je *jsonbody.Error
	switch err := jsonbody.Decode(r, max, v, false); {
	case err == nil:
		return nil
	case errors.As(err, &je) && errors.Is(err, jsonbody.ErrTooLarge):
		return fmt.Errorf("%w: %s", ErrBodyTooLarge, je.Msg)
	case je != nil:
		return invalid("%s", je.Msg)
	default:
		return invalid("the request body is not valid JSON")
	}
}

// params reads query parameters strictly: only the allowed names, each at
// most once (unless repeatable), of bounded length.
type params struct {
	v url.Values
}

// newParams checks that v has only the allowed parameters.
func newParams(v url.Values, allowed ...string) (params, error) {
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			return params{}, invalid("unsupported query parameter %q (supported: %s)", name, strings.Join(allowed, ", "))
		}
		for _, val := range v[name] {
			if len(val) > MaxParamLen {
				return params{}, invalid("query parameter %s is longer than %d bytes", name, MaxParamLen)
			}
		}
	}
	return params{v: v}, nil
}

// str returns a single-valued parameter ("" when absent).
func (p params) str(name string) (string, error) {
	vals := p.v[name]
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return vals[0], nil
	}
	return "", invalid("query parameter %s is given %d times; give it once", name, len(vals))
}

// boolean returns a true/false parameter (nil when absent).
func (p params) boolean(name string) (*bool, error) {
	s, err := p.str(name)
	if err != nil || s == "" {
		return nil, err
	}
	switch strings.ToLower(s) {
	case "true":
		b := true
		return &b, nil
	case "false":
		b := false
		return &b, nil
	}
	return nil, invalid("query parameter %s must be true or false, not %q", name, s)
}

// integer returns an integer parameter within [min, max] (def when absent).
func (p params) integer(name string, def, min, max int) (int, error) {
	s, err := p.str(name)
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, invalid("query parameter %s must be an integer from %d to %d, not %q", name, min, max, s)
	}
	return n, nil
}

// paging returns skip and limit: skip >= 0; limit -1 (all) or >= 1,
// default [events.DefaultLimit].
func (p params) paging() (skip, limit int, err error) {
	skip, err = p.integer("skip", 0, 0, 1<<31-1)
	if err != nil {
		return 0, 0, err
	}
	s, err := p.str("limit")
	if err != nil {
		return 0, 0, err
	}
	if s == "" {
		return skip, events.DefaultLimit, nil
	}
	limit, err = strconv.Atoi(s)
	if err != nil || limit < events.LimitAll || limit == 0 || limit > 1<<31-1 {
		return 0, 0, invalid("query parameter limit must be -1 (all) or a positive integer, not %q", s)
	}
	return skip, limit, nil
}

// KeyParams are the query parameters of GET /cckm/azure/keys.
var KeyParams = []string{"id", "key_vault", "key_vault_id", "key_name", "kid", "enabled", "gone", "key_size", "skip", "limit", "sort"}

// ParseKeyQuery parses the query of GET /cckm/azure/keys. Unknown
// parameters, repeated ones and bad values are errors wrapping
// control.ErrInvalid that name the parameter.
func ParseKeyQuery(v url.Values) (events.KeyQuery, error) {
	p, err := newParams(v, KeyParams...)
	if err != nil {
		return events.KeyQuery{}, err
	}
	var q events.KeyQuery
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"id", &q.ID}, {"key_vault", &q.KeyVault}, {"key_vault_id", &q.VaultID},
		{"key_name", &q.KeyName}, {"kid", &q.Kid}, {"sort", &q.Sort},
	} {
		if *f.dst, err = p.str(f.name); err != nil {
			return events.KeyQuery{}, err
		}
	}
	if q.Enabled, err = p.boolean("enabled"); err != nil {
		return events.KeyQuery{}, err
	}
	if q.Gone, err = p.boolean("gone"); err != nil {
		return events.KeyQuery{}, err
	}
	if q.KeySize, err = p.integer("key_size", 0, 1, MaxKeySize); err != nil {
		return events.KeyQuery{}, err
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return events.KeyQuery{}, err
	}
	if q.Sort != "" && !slices.Contains(events.KeySortFields, strings.TrimPrefix(q.Sort, "-")) {
		return events.KeyQuery{}, invalid("query parameter sort must be one of %s (prefix - for descending), not %q", strings.Join(events.KeySortFields, ", "), q.Sort)
	}
	return q, nil
}

// JobVaultParams are the query parameters of GET
// /cckm/azure/synchronization-jobs/{id}/vaults.
var JobVaultParams = []string{"status", "skip", "limit"}

// ParseJobVaultQuery parses the query of GET
// …/synchronization-jobs/{id}/vaults: skip, limit and status.
func ParseJobVaultQuery(v url.Values) (events.JobVaultQuery, error) {
	p, err := newParams(v, JobVaultParams...)
	if err != nil {
		return events.JobVaultQuery{}, err
	}
	var q events.JobVaultQuery
	status, err := p.str("status")
	if err != nil {
		return events.JobVaultQuery{}, err
	}
	if q.Status = events.VaultStatus(status); status != "" && !q.Status.Valid() {
		return events.JobVaultQuery{}, invalid("query parameter status must be pending, in_progress, completed, failed or aborted, not %q", status)
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return events.JobVaultQuery{}, err
	}
	return q, nil
}

// JobParams are the query parameters of GET /cckm/azure/synchronization-jobs.
var JobParams = []string{"id", "overall_status", "key_vaults", "job_config_id", "skip", "limit", "sort"}

// ParseJobQuery parses the query of GET /cckm/azure/synchronization-jobs.
// overall_status is in_progress (also spelled "in progress", as in CCKM's
// documentation), completed or failed. key_vaults may be comma-separated
// and/or repeated. sort accepts only
// -createdAt (newest first, the only order). Errors wrap
// control.ErrInvalid and name the parameter.
func ParseJobQuery(v url.Values) (events.JobQuery, error) {
	p, err := newParams(v, JobParams...)
	if err != nil {
		return events.JobQuery{}, err
	}
	var q events.JobQuery
	if q.ID, err = p.str("id"); err != nil {
		return events.JobQuery{}, err
	}
	if q.JobConfigID, err = p.str("job_config_id"); err != nil {
		return events.JobQuery{}, err
	}
	status, err := p.str("overall_status")
	if err != nil {
		return events.JobQuery{}, err
	}
	if status == "in progress" { // CCKM's documentation spells it so
		status = string(events.JobInProgress)
	}
	switch st := events.JobStatus(status); st {
	case "", events.JobInProgress, events.JobCompleted, events.JobFailed:
		q.OverallStatus = st
	default:
		return events.JobQuery{}, invalid("query parameter overall_status must be in_progress (or \"in progress\"), completed or failed, not %q", status)
	}
	for _, val := range v["key_vaults"] {
		for _, ref := range strings.Split(val, ",") {
			if ref = strings.TrimSpace(ref); ref != "" && !slices.Contains(q.KeyVaults, ref) {
				q.KeyVaults = append(q.KeyVaults, ref)
			}
		}
	}
	if len(q.KeyVaults) > MaxFilterVaults {
		return events.JobQuery{}, invalid("query parameter key_vaults names %d vaults; at most %d are allowed", len(q.KeyVaults), MaxFilterVaults)
	}
	sortBy, err := p.str("sort")
	if err != nil {
		return events.JobQuery{}, err
	}
	if sortBy != "" && sortBy != "-createdAt" {
		return events.JobQuery{}, invalid("query parameter sort must be -createdAt (jobs are listed newest first), not %q", sortBy)
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return events.JobQuery{}, err
	}
	return q, nil
}

// VaultParams are the query parameters of GET /cckm/azure/vaults.
var VaultParams = []string{"name", "azure_vault_id", "subscription_id", "connection", "location", "type", "sort", "skip", "limit"}

// ParseVaultQuery parses the query of GET /cckm/azure/vaults: the filters
// name (plain or "name::subscription"), azure_vault_id, subscription_id,
// connection, location and type, sort (control.VaultSortFields, "-" for
// descending) and paging. Errors wrap control.ErrInvalid and name the
// parameter.
func ParseVaultQuery(v url.Values) (control.VaultQuery, error) {
	p, err := newParams(v, VaultParams...)
	if err != nil {
		return control.VaultQuery{}, err
	}
	var q control.VaultQuery
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"name", &q.Name}, {"azure_vault_id", &q.AzureVaultID}, {"subscription_id", &q.SubscriptionID},
		{"connection", &q.Connection}, {"location", &q.Location}, {"type", &q.Type}, {"sort", &q.Sort},
	} {
		if *f.dst, err = p.str(f.name); err != nil {
			return control.VaultQuery{}, err
		}
	}
	if q.Type != "" {
		if _, ok := control.CanonicalVaultType(q.Type); !ok {
			return control.VaultQuery{}, invalid("query parameter type must be %s or %s, not %q", events.VaultTypeVault, events.VaultTypeManagedHSM, q.Type)
		}
	}
	if err := control.CheckVaultSort(q.Sort); err != nil {
		return control.VaultQuery{}, invalid("query parameter %s", err.Error())
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return control.VaultQuery{}, err
	}
	return q, nil
}
