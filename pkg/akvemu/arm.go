package akvemu

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// Azure Resource Manager defaults.
const (
	// DefaultARMReadBucket is ARM's read bucket per subscription (and per tenant):
	// 250 requests, refilled at DefaultARMReadRefill per second
	// (learn.microsoft.com: "Understand how Azure Resource Manager throttles requests").
	DefaultARMReadBucket = 250
	// DefaultARMReadRefill is the read bucket's refill rate per second.
	DefaultARMReadRefill = 25
	// DefaultARMPageSize is the page size of ARM listings without $top.
	DefaultARMPageSize = 100
	// MaxARMPageSize caps $top and ARMPageSize.
	MaxARMPageSize = 1000
)

// API versions the emulated Azure Resource Manager accepts, per resource provider.
// They are the stable versions published in Azure's REST API specs
// (specification/resources/resource-manager/Microsoft.Resources/stable/<v>/subscriptions.json
// and specification/keyvault/resource-manager/Microsoft.KeyVault/stable/<v>/keyvault.json,
// managedHsm.json).
var (
	SubscriptionAPIVersions = []string{"2016-06-01", "2018-06-01", "2019-06-01", "2019-11-01", "2020-01-01", "2021-01-01", "2022-12-01"}
	VaultARMAPIVersions     = []string{"2019-09-01", "2021-10-01", "2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01", "2025-05-01"}
	ManagedHSMAPIVersions   = []string{"2021-10-01", "2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01", "2025-05-01"}
)

// armSub is one subscription as ARM lists it, with its vaults and pools sorted by
// lower-case resource id (so a resource group's resources are contiguous).
type armSub struct {
	id, displayName, state string
	vaults, hsms           []*Vault
	rgs                    map[string]int // lower-case resource group -> resources in it
	lim                    *rate.Limiter
}

// armState is the emulated Azure Resource Manager: an index of subscriptions,
// vaults and pools, and the read throttles. It has its own lock; Emulator.mu may be
// held when add and remove are called, never the other way round.
type armState struct {
	e *Emulator

	mu        sync.RWMutex
	subs      map[string]*armSub // by lower-case id
	subOrder  []*armSub          // sorted by lower-case id
	tenantLim *rate.Limiter
}

func newARMState(e *Emulator) *armState {
	a := &armState{e: e, subs: map[string]*armSub{}, tenantLim: newARMLimiter(e.cfg)}
	for _, s := range e.cfg.Subscriptions {
		sub := a.sub(s.ID)
		if s.DisplayName != "" {
			sub.displayName = s.DisplayName
		}
		if s.State != "" {
			sub.state = s.State
		}
	}
	return a
}

// newARMLimiter returns a fresh ARM read limiter for cfg (nil: unlimited).
func newARMLimiter(cfg Config) *rate.Limiter {
	if cfg.ARMReadBucket <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(cfg.ARMReadRefill), cfg.ARMReadBucket)
}

// sub returns the subscription, creating it; the caller holds a.mu.
func (a *armState) sub(id string) *armSub {
	lid := lower(id)
	if s := a.subs[lid]; s != nil {
		return s
	}
	short := id
	if len(short) > 8 {
		short = short[:8]
	}
	s := &armSub{id: id, displayName: "akvemu subscription " + short, state: "Enabled", rgs: map[string]int{}, lim: newARMLimiter(a.e.cfg)}
	a.subs[lid] = s
	i := sort.Search(len(a.subOrder), func(i int) bool { return lower(a.subOrder[i].id) >= lid })
	a.subOrder = slices.Insert(a.subOrder, i, s)
	return s
}

func (a *armState) list(s *armSub, kind Kind) *[]*Vault {
	if kind == KindManagedHSM {
		return &s.hsms
	}
	return &s.vaults
}

// add indexes a new vault or pool under its subscription.
func (a *armState) add(v *Vault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sub(v.subID)
	l := a.list(s, v.kind)
	i := sort.Search(len(*l), func(i int) bool { return (*l)[i].lid >= v.lid })
	*l = slices.Insert(*l, i, v)
	s.rgs[lower(v.rg)]++
}

// remove drops a vault or pool from the index (its subscription stays listed).
func (a *armState) remove(v *Vault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.subs[lower(v.subID)]
	if s == nil {
		return
	}
	l := a.list(s, v.kind)
	if i := slices.Index(*l, v); i >= 0 {
		*l = slices.Delete(*l, i, i+1)
		if s.rgs[lower(v.rg)]--; s.rgs[lower(v.rg)] <= 0 {
			delete(s.rgs, lower(v.rg))
		}
	}
}

// armError is an ARM error answer: {"error":{"code","message"}}.
type armError struct {
	status        int
	code, message string
}

func (a *armState) writeError(w http.ResponseWriter, ae armError) {
	w.Header().Set("X-Ms-Failure-Cause", "gateway")
	writeJSON(w, ae.status, map[string]any{"error": map[string]string{"code": ae.code, "message": ae.message}})
}

// armRoute is a parsed ARM request path.
type armRoute struct {
	sub, rg, name string
	kind          Kind
	listSubs      bool // GET /subscriptions
	getSub        bool // GET /subscriptions/{id}
	list          bool // a list of vaults or pools
}

// parseARMRoute parses the supported paths; ARM path segments are case-insensitive.
func parseARMRoute(path string) (armRoute, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, s := range segs {
		if s == "" {
			return armRoute{}, false
		}
	}
	eq := strings.EqualFold
	if len(segs) == 0 || !eq(segs[0], "subscriptions") {
		return armRoute{}, false
	}
	switch len(segs) {
	case 1:
		return armRoute{listSubs: true}, true
	case 2:
		return armRoute{sub: segs[1], getSub: true}, true
	}
	r := armRoute{sub: segs[1]}
	rest := segs[2:]
	if len(rest) >= 2 && eq(rest[0], "resourceGroups") {
		r.rg = rest[1]
		rest = rest[2:]
	}
	if len(rest) < 3 || !eq(rest[0], "providers") || !eq(rest[1], "Microsoft.KeyVault") {
		return armRoute{}, false
	}
	switch {
	case eq(rest[2], "vaults"):
		r.kind = KindVault
	case eq(rest[2], "managedHSMs"):
		r.kind = KindManagedHSM
	default:
		return armRoute{}, false
	}
	switch len(rest) {
	case 3:
		r.list = true
		return r, true
	case 4:
		if r.rg == "" {
			return armRoute{}, false
		}
		r.name = rest[3]
		return r, true
	}
	return armRoute{}, false
}

// ServeHTTP answers one Resource Manager request: auth (401), route (404),
// read throttle (429), method (405), api-version (400), then the listing or
// resource.
func (a *armState) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	reqID := uuid.NewString()
	corr := r.Header.Get("X-Ms-Correlation-Request-Id")
	if _, err := uuid.Parse(corr); err != nil {
		corr = reqID
	}
	h.Set("X-Ms-Request-Id", reqID)
	h.Set("X-Ms-Correlation-Request-Id", corr)
	h.Set("X-Ms-Routing-Request-Id", strings.ToUpper(a.e.cfg.Region)+":"+time.Now().UTC().Format("20060102T150405Z")+":"+reqID)
	if cid := r.Header.Get("X-Ms-Client-Request-Id"); cid != "" && len(cid) <= 256 {
		h.Set("X-Ms-Client-Request-Id", cid)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	h.Set("X-Content-Type-Options", "nosniff")

	ti, ae := a.authenticate(w, r)
	if ti == nil {
		a.writeError(w, ae)
		return
	}
	route, ok := parseARMRoute(r.URL.Path)
	if !ok {
		a.writeError(w, armError{http.StatusNotFound, "InvalidResourceType", "The resource type could not be found in the namespace for api version '" + r.URL.Query().Get("api-version") + "'. The emulated Azure Resource Manager serves subscriptions and Microsoft.KeyVault vaults and managedHSMs."})
		return
	}
	// Every authenticated request to a subscription (or the tenant) counts
	// against its bucket, whatever its answer.
	if !a.throttle(w, route, ti) {
		return
	}
	if r.Method != http.MethodGet {
		a.writeError(w, armError{http.StatusMethodNotAllowed, "MethodNotAllowed", "The emulated Azure Resource Manager only reads: '" + r.Method + "' is not supported."})
		return
	}
	if ae, bad := checkARMAPIVersion(r.URL.Query(), route); bad {
		a.writeError(w, ae)
		return
	}
	switch {
	case route.listSubs:
		a.serveSubscriptions(w, r)
	case route.getSub:
		a.mu.RLock()
		s := a.subs[lower(route.sub)]
		var body armSubscription
		if s != nil {
			body = a.renderSub(s)
		}
		a.mu.RUnlock()
		if s == nil {
			a.writeError(w, subNotFound(route.sub))
			return
		}
		writeJSON(w, http.StatusOK, body)
	case route.list:
		a.serveList(w, r, route)
	default:
		a.serveResource(w, route)
	}
}

// allowedARMAudiences are the audiences ARM accepts, as its 401 names them.
var allowedARMAudiences = []string{ResourceManagerClassicAudience + "/", ResourceManagerClassicAudience, ResourceManagerAudience + "/", ResourceManagerAudience}

// authenticate checks the bearer token like ARM: present, valid, of the tenant,
// for the management audience. It sets the challenge header on failure.
func (a *armState) authenticate(w http.ResponseWriter, r *http.Request) (*tokenInfo, armError) {
	ts := a.e.tokens
	fail := func(code, message, desc string) (*tokenInfo, armError) {
		w.Header().Set("Www-Authenticate", `Bearer authorization_uri="`+ts.authority+`/", error="invalid_token", error_description="`+desc+`"`)
		return nil, armError{http.StatusUnauthorized, code, message}
	}
	hv := r.Header.Get("Authorization")
	if len(hv) < 7 || !strings.EqualFold(hv[:7], "Bearer ") {
		return fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
			"The authentication failed because of missing 'Authorization' header.")
	}
	now := time.Now()
	ti, err := ts.verify(strings.TrimSpace(hv[7:]), now.Unix())
	switch {
	case err == errTokenExpired:
		return fail("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time '"+now.UTC().Format("1/2/2006 3:04:05 PM")+"'.",
			"The access token has expired.")
	case err != nil:
		return fail("InvalidAuthenticationToken", "The access token is invalid.", "The access token is invalid.")
	}
	if ti.tid != ts.tenant {
		return fail("InvalidAuthenticationTokenTenant",
			fmt.Sprintf("The access token is from the wrong issuer 'https://sts.windows.net/%s/'. It must match the tenant 'https://sts.windows.net/%s/' associated with this subscription. Please use the authority (URL) '%s/%s' to get the token.", ti.tid, ts.tenant, ts.authority, ts.tenant),
			"The access token is from the wrong issuer.")
	}
	if !slices.Contains(allowedARMAudiences, ti.aud) {
		allowed := "'" + strings.Join(allowedARMAudiences, "','") + "'"
		return fail("InvalidAuthenticationTokenAudience",
			"The access token has been obtained for wrong audience or resource '"+ti.aud+"'. It should exactly match with one of the allowed audiences "+allowed+".",
			"The access token has been obtained from wrong audience or resource '"+ti.aud+"'. It should exactly match with one of the allowed audiences "+allowed+".")
	}
	return ti, armError{}
}

// checkARMAPIVersion answers 400 for a missing or unsupported api-version.
func checkARMAPIVersion(q url.Values, route armRoute) (armError, bool) {
	v := q.Get("api-version")
	if v == "" {
		return armError{http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."}, true
	}
	supported := SubscriptionAPIVersions
	typ := ""
	switch {
	case route.kind == KindVault && !route.listSubs && !route.getSub:
		supported, typ = VaultARMAPIVersions, "vaults"
	case route.kind == KindManagedHSM:
		supported, typ = ManagedHSMAPIVersions, "managedHSMs"
	}
	if slices.Contains(supported, v) {
		return armError{}, false
	}
	newest := slices.Clone(supported)
	slices.Reverse(newest)
	if typ == "" {
		return armError{http.StatusBadRequest, "InvalidApiVersionParameter", "The api-version '" + v + "' is invalid. The supported versions are '" + strings.Join(newest, ",") + "'."}, true
	}
	return armError{http.StatusBadRequest, "InvalidApiVersionParameter", "The api-version '" + v + "' is invalid for resource type '" + typ + "'. The supported api-versions are '" + strings.Join(newest, ", ") + "'."}, true
}

// throttle takes one read token from the subscription's (or, for the subscription
// list, the tenant's) bucket, sets the remaining-reads header and answers 429 when
// the bucket is empty.
func (a *armState) throttle(w http.ResponseWriter, route armRoute, ti *tokenInfo) bool {
	lim, header := a.tenantLim, "X-Ms-Ratelimit-Remaining-Tenant-Reads"
	if !route.listSubs {
		header = "X-Ms-Ratelimit-Remaining-Subscription-Reads"
		a.mu.RLock()
		s := a.subs[lower(route.sub)]
		a.mu.RUnlock()
		lim = nil
		if s != nil {
			lim = s.lim
		}
	}
	if lim == nil {
		w.Header().Set(header, strconv.Itoa(max(a.e.cfg.ARMReadBucket, DefaultARMReadBucket)-1))
		return true
	}
	now := time.Now()
	if lim.AllowN(now, 1) {
		w.Header().Set(header, strconv.Itoa(int(math.Max(0, lim.TokensAt(now)))))
		return true
	}
	w.Header().Set(header, "0")
	wait := time.Duration(float64(time.Second) * (1 - lim.TokensAt(now)) / float64(lim.Limit()))
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	if route.listSubs {
		a.writeError(w, armError{http.StatusTooManyRequests, "TenantRequestsThrottled", fmt.Sprintf(
			"Number of 'read' requests for tenant '%s' actor '%s' exceeded. Please try again after '%d' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
			a.e.tokens.tenant, ti.oid, secs)})
		return false
	}
	a.writeError(w, armError{http.StatusTooManyRequests, "SubscriptionRequestsThrottled", fmt.Sprintf(
		"Number of 'read' requests for subscription '%s' actor '%s' exceeded. Please try again after '%d' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
		route.sub, ti.oid, secs)})
	return false
}

func subNotFound(id string) armError {
	return armError{http.StatusNotFound, "SubscriptionNotFound", "The subscription '" + id + "' could not be found."}
}

func rgNotFound(rg string) armError {
	return armError{http.StatusNotFound, "ResourceGroupNotFound", "Resource group '" + rg + "' could not be found."}
}

// ---- paging ----

const armSkipTokenVersion = "a1"

func encodeARMSkipToken(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(armSkipTokenVersion + "!" + after))
}

func decodeARMSkipToken(tok string) (string, bool) {
	raw, err := decodeB64(tok)
	if err != nil {
		return "", false
	}
	after, ok := strings.CutPrefix(string(raw), armSkipTokenVersion+"!")
	return after, ok
}

// pageParams reads $top (the page size) and $skiptoken.
func (a *armState) pageParams(q url.Values) (size int, top, after string, ae armError, ok bool) {
	size = a.e.cfg.ARMPageSize
	if top = q.Get("$top"); top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n < 1 {
			return 0, "", "", armError{http.StatusBadRequest, "InvalidQueryParameterValue",
				"The value '" + top + "' of query parameter '$top' is invalid: it must be a positive integer."}, false
		}
		size = min(n, MaxARMPageSize)
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		var good bool
		if after, good = decodeARMSkipToken(tok); !good {
			return 0, "", "", armError{http.StatusBadRequest, "InvalidSkipToken", "The value of query parameter '$skiptoken' is invalid."}, false
		}
	}
	return size, top, after, armError{}, true
}

// nextLink is the absolute URL of the page after `last`.
func (a *armState) nextLink(r *http.Request, apiVersion, top, last string) string {
	q := url.Values{}
	q.Set("api-version", apiVersion)
	if top != "" {
		q.Set("$top", top)
	}
	q.Set("$skiptoken", encodeARMSkipToken(last))
	return a.e.armURL + r.URL.EscapedPath() + "?" + q.Encode()
}

// ---- subscriptions ----

type armSubscriptionPolicies struct {
	LocationPlacementID string `json:"locationPlacementId"`
	QuotaID             string `json:"quotaId"`
	SpendingLimit       string `json:"spendingLimit"`
}

type armSubscription struct {
	ID                   string                  `json:"id"`
	AuthorizationSource  string                  `json:"authorizationSource"`
	ManagedByTenants     []map[string]string     `json:"managedByTenants"`
	SubscriptionID       string                  `json:"subscriptionId"`
	TenantID             string                  `json:"tenantId"`
	DisplayName          string                  `json:"displayName"`
	State                string                  `json:"state"`
	SubscriptionPolicies armSubscriptionPolicies `json:"subscriptionPolicies"`
}

func (a *armState) renderSub(s *armSub) armSubscription {
	return armSubscription{
		ID: "/subscriptions/" + s.id, AuthorizationSource: "RoleBased", ManagedByTenants: []map[string]string{},
		SubscriptionID: s.id, TenantID: a.e.tokens.tenant, DisplayName: s.displayName, State: s.state,
		SubscriptionPolicies: armSubscriptionPolicies{LocationPlacementID: "Public_2014-09-01", QuotaID: "PayAsYouGo_2014-09-01", SpendingLimit: "Off"},
	}
}

type armList[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

func (a *armState) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, top, after, ae, ok := a.pageParams(q)
	if !ok {
		a.writeError(w, ae)
		return
	}
	a.mu.RLock()
	i := sort.Search(len(a.subOrder), func(i int) bool { return lower(a.subOrder[i].id) > after })
	end := min(i+size, len(a.subOrder))
	out := armList[armSubscription]{Value: make([]armSubscription, 0, end-i)}
	for _, s := range a.subOrder[i:end] {
		out.Value = append(out.Value, a.renderSub(s))
	}
	if end < len(a.subOrder) {
		out.NextLink = a.nextLink(r, q.Get("api-version"), top, lower(a.subOrder[end-1].id))
	}
	a.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

// ---- vaults and pools ----

type armSKU struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type armSystemData struct {
	CreatedBy          string `json:"createdBy"`
	CreatedByType      string `json:"createdByType"`
	CreatedAt          string `json:"createdAt"`
	LastModifiedBy     string `json:"lastModifiedBy"`
	LastModifiedByType string `json:"lastModifiedByType"`
	LastModifiedAt     string `json:"lastModifiedAt"`
}

type armPermissions struct {
	Keys         []string `json:"keys"`
	Secrets      []string `json:"secrets"`
	Certificates []string `json:"certificates"`
}

type armAccessPolicy struct {
	TenantID    string         `json:"tenantId"`
	ObjectID    string         `json:"objectId"`
	Permissions armPermissions `json:"permissions"`
}

type armVaultProperties struct {
	SKU                          armSKU            `json:"sku"`
	TenantID                     string            `json:"tenantId"`
	AccessPolicies               []armAccessPolicy `json:"accessPolicies"`
	EnabledForDeployment         bool              `json:"enabledForDeployment"`
	EnabledForDiskEncryption     bool              `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment bool              `json:"enabledForTemplateDeployment"`
	EnableSoftDelete             bool              `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int               `json:"softDeleteRetentionInDays"`
	EnableRbacAuthorization      bool              `json:"enableRbacAuthorization"`
	EnablePurgeProtection        *bool             `json:"enablePurgeProtection,omitempty"`
	VaultURI                     string            `json:"vaultUri"`
	ProvisioningState            string            `json:"provisioningState"`
	PublicNetworkAccess          string            `json:"publicNetworkAccess"`
}

type armNetworkACLs struct {
	Bypass              string   `json:"bypass"`
	DefaultAction       string   `json:"defaultAction"`
	IPRules             []string `json:"ipRules"`
	VirtualNetworkRules []string `json:"virtualNetworkRules"`
}

type armSecurityDomain struct {
	ActivationStatus        string `json:"activationStatus"`
	ActivationStatusMessage string `json:"activationStatusMessage"`
}

type armHSMProperties struct {
	TenantID                   string            `json:"tenantId"`
	InitialAdminObjectIDs      []string          `json:"initialAdminObjectIds"`
	HSMURI                     string            `json:"hsmUri"`
	EnableSoftDelete           bool              `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays  int               `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection      bool              `json:"enablePurgeProtection"`
	StatusMessage              string            `json:"statusMessage"`
	ProvisioningState          string            `json:"provisioningState"`
	NetworkACLs                armNetworkACLs    `json:"networkAcls"`
	Regions                    []string          `json:"regions"`
	PrivateEndpointConnections []string          `json:"privateEndpointConnections"`
	PublicNetworkAccess        string            `json:"publicNetworkAccess"`
	SecurityDomainProperties   armSecurityDomain `json:"securityDomainProperties"`
}

// armResource is a vault (Properties *armVaultProperties) or a pool
// (SKU and Properties *armHSMProperties), as the Key Vault resource provider
// returns them.
type armResource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	SKU        *armSKU           `json:"sku,omitempty"`
	Tags       map[string]string `json:"tags"`
	SystemData armSystemData     `json:"systemData"`
	Properties any               `json:"properties"`
}

// armTime formats like ARM's systemData: 2020-01-01T12:00:00.0000000Z.
func armTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// allKeyPermissions are the key permissions of an access policy that grants all.
var allKeyPermissions = []string{"encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify", "get", "list", "create", "update", "import", "delete", "backup", "restore", "recover", "purge", "rotate", "getrotationpolicy", "setrotationpolicy", "release"}

// renderResource builds the ARM resource of a vault or pool.
func (a *armState) renderResource(v *Vault) armResource {
	e := a.e
	ts := armTime(v.created)
	res := armResource{
		ID: v.ResourceID(), Name: v.name, Type: v.kind.ARMType(), Location: v.location, Tags: v.tags,
		SystemData: armSystemData{CreatedBy: e.clientID, CreatedByType: "Application", CreatedAt: ts,
			LastModifiedBy: e.clientID, LastModifiedByType: "Application", LastModifiedAt: ts},
	}
	uri := v.url + "/"
	tenant := e.tokens.tenant
	if v.kind == KindManagedHSM {
		res.SKU = &armSKU{Family: "B", Name: string(SKUStandardB1)}
		res.Properties = armHSMProperties{
			TenantID: tenant, InitialAdminObjectIDs: []string{derivedUUID("oid", e.clientID)}, HSMURI: uri,
			EnableSoftDelete: true, SoftDeleteRetentionInDays: v.attrs.recoverableDays, EnablePurgeProtection: !v.purgeOK,
			StatusMessage: "The Managed HSM is provisioned and ready to use.", ProvisioningState: "Succeeded",
			NetworkACLs: armNetworkACLs{Bypass: "AzureServices", DefaultAction: "Allow", IPRules: []string{}, VirtualNetworkRules: []string{}},
			Regions:     []string{}, PrivateEndpointConnections: []string{}, PublicNetworkAccess: "Enabled",
			SecurityDomainProperties: armSecurityDomain{ActivationStatus: "Active",
				ActivationStatusMessage: "Your HSM has been activated and can be used for cryptographic operations."},
		}
		return res
	}
	props := armVaultProperties{
		SKU: armSKU{Family: "A", Name: string(v.sku)}, TenantID: tenant, AccessPolicies: []armAccessPolicy{},
		EnableSoftDelete: true, SoftDeleteRetentionInDays: v.attrs.recoverableDays, EnableRbacAuthorization: v.rbac,
		VaultURI: uri, ProvisioningState: "Succeeded", PublicNetworkAccess: "Enabled",
	}
	if !v.rbac {
		props.AccessPolicies = append(props.AccessPolicies, armAccessPolicy{
			TenantID: tenant, ObjectID: derivedUUID("oid", e.clientID),
			Permissions: armPermissions{Keys: allKeyPermissions, Secrets: []string{}, Certificates: []string{}},
		})
	}
	if !v.purgeOK {
		t := true
		props.EnablePurgeProtection = &t
	}
	res.Properties = props
	return res
}

// serveList answers one page of vaults or pools of a subscription or resource group.
func (a *armState) serveList(w http.ResponseWriter, r *http.Request, route armRoute) {
	q := r.URL.Query()
	size, top, after, ae, ok := a.pageParams(q)
	if !ok {
		a.writeError(w, ae)
		return
	}
	a.mu.RLock()
	s := a.subs[lower(route.sub)]
	if s == nil {
		a.mu.RUnlock()
		a.writeError(w, subNotFound(route.sub))
		return
	}
	if route.rg != "" && s.rgs[lower(route.rg)] == 0 {
		a.mu.RUnlock()
		a.writeError(w, rgNotFound(route.rg))
		return
	}
	l := *a.list(s, route.kind)
	prefix := ""
	if route.rg != "" {
		prefix = lower("/subscriptions/" + s.id + "/resourceGroups/" + route.rg + "/")
	}
	i := sort.Search(len(l), func(i int) bool { return l[i].lid >= prefix })
	if after != "" {
		i = max(i, sort.Search(len(l), func(i int) bool { return l[i].lid > after }))
	}
	end := i
	for end < len(l) && end-i < size && strings.HasPrefix(l[end].lid, prefix) {
		end++
	}
	page := slices.Clone(l[i:end])
	more := end < len(l) && strings.HasPrefix(l[end].lid, prefix)
	a.mu.RUnlock()
	out := armList[armResource]{Value: make([]armResource, 0, len(page))}
	for _, v := range page {
		out.Value = append(out.Value, a.renderResource(v))
	}
	if more {
		out.NextLink = a.nextLink(r, q.Get("api-version"), top, page[len(page)-1].lid)
	}
	writeJSON(w, http.StatusOK, out)
}

// serveResource answers GET of one vault or pool.
func (a *armState) serveResource(w http.ResponseWriter, route armRoute) {
	a.mu.RLock()
	s := a.subs[lower(route.sub)]
	var found *Vault
	rgKnown := false
	if s != nil {
		rgKnown = s.rgs[lower(route.rg)] > 0
		l := *a.list(s, route.kind)
		lid := lower("/subscriptions/" + s.id + "/resourceGroups/" + route.rg + "/providers/" + route.kind.ARMType() + "/" + route.name)
		if i := sort.Search(len(l), func(i int) bool { return l[i].lid >= lid }); i < len(l) && l[i].lid == lid {
			found = l[i]
		}
	}
	a.mu.RUnlock()
	switch {
	case s == nil:
		a.writeError(w, subNotFound(route.sub))
	case !rgKnown:
		a.writeError(w, rgNotFound(route.rg))
	case found == nil:
		a.writeError(w, armError{http.StatusNotFound, "ResourceNotFound", "The Resource '" + route.kind.ARMType() + "/" + route.name +
			"' under resource group '" + route.rg + "' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"})
	default:
		writeJSON(w, http.StatusOK, a.renderResource(found))
	}
}
