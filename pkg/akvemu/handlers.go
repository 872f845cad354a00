package akvemu

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const contentTypeJSON = "application/json; charset=utf-8"

// Shared header values: assigning a shared slice avoids per-request allocations.
var (
	hdrJSON           = []string{contentTypeJSON}
	hdrNoCache        = []string{"no-cache"}
	hdrServiceVersion = []string{"1.9.2506.1"}
)

// SupportedAPIVersions are the api-version values the vaults and pools accept.
var SupportedAPIVersions = []string{"2025-07-01", "7.4", "7.5", "7.6", KeySizeAPIVersion}

// KeySizeAPIVersion is the first api-version whose JWK of a symmetric (oct-HSM) key
// carries key_size (Azure SDK for Python, "Added API 2026-01-01-preview with
// key_size property for oct-HSM keys"); older versions return no size for them.
const KeySizeAPIVersion = "2026-01-01-preview"

// LatestAPIVersion is the newest supported api-version (the one azkeys v1.5 sends).
const LatestAPIVersion = "2025-07-01"

const maxBodyBytes = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

var kvBufPool = sync.Pool{New: func() any { s := make([]*keyVersion, 0, MaxPageSize); return &s }}

// writeBody writes a JSON answer.
func (v *Vault) writeBody(w http.ResponseWriter, status int, b []byte) int {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoCache
	h["X-Ms-Keyvault-Region"] = v.e.regionHdr
	h["X-Ms-Keyvault-Service-Version"] = hdrServiceVersion
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b) // #nosec G705 -- a JSON API body (strings JSON-escaped by the encoder) served as application/json, never HTML
	return status
}

// writeServiceError writes {"error":{…}} with x-ms-error-code.
func writeServiceError(w http.ResponseWriter, se *serviceError) int {
	b := appendErrorBody(make([]byte, 0, 256), se.code, se.message, se.inner)
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["X-Ms-Error-Code"] = []string{se.code}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(se.status)
	_, _ = w.Write(b) // #nosec G705 -- a JSON error body (appendJSONString escapes every string) served as application/json, never HTML
	return se.status
}

// parseRoute maps a method and path to an operation. ok is false for an unknown
// route or method.
func parseRoute(method, path string) (op opCode, name, version string, ok bool) {
	switch {
	case path == "/keys" || path == "/keys/":
		return opListKeys, "", "", method == http.MethodGet
	case strings.HasPrefix(path, "/keys/"):
		rest := path[len("/keys/"):]
		name, tail, hasTail := strings.Cut(rest, "/")
		if strings.Contains(tail, "/") {
			return opOther, name, "", false
		}
		switch {
		case !hasTail:
			switch method {
			case http.MethodGet:
				return opGetKey, name, "", true
			case http.MethodPut:
				return opImportKey, name, "", true
			case http.MethodDelete:
				return opDeleteKey, name, "", true
			case http.MethodPatch:
				return opUpdateKey, name, "", true
			}
			return opOther, name, "", false
		case tail == "versions" && method == http.MethodGet:
			return opListKeyVersions, name, "", true
		case tail == "create" && method == http.MethodPost:
			return opCreateKey, name, "", true
		case tail == "rotate" && method == http.MethodPost:
			return opRotateKey, name, "", true
		case method == http.MethodGet:
			return opGetKey, name, tail, true
		case method == http.MethodPatch:
			return opUpdateKey, name, tail, true
		}
		return opOther, name, "", false
	case path == "/deletedkeys" || path == "/deletedkeys/":
		return opListDeletedKeys, "", "", method == http.MethodGet
	case strings.HasPrefix(path, "/deletedkeys/"):
		rest := path[len("/deletedkeys/"):]
		name, tail, hasTail := strings.Cut(rest, "/")
		switch {
		case (!hasTail || tail == "") && method == http.MethodGet:
			return opGetDeletedKey, name, "", true
		case (!hasTail || tail == "") && method == http.MethodDelete:
			return opPurgeDeletedKey, name, "", true
		case tail == "recover" && method == http.MethodPost:
			return opRecoverDeletedKey, name, "", true
		}
		return opOther, name, "", false
	}
	return opOther, "", "", false
}

// queryValue returns the raw value of a query parameter without building a map.
func queryValue(rawQuery, key string) (string, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, val, _ := strings.Cut(kv, "=")
		if k == key {
			return val, true
		}
	}
	return "", false
}

// checkAPIVersion validates api-version like the service.
func checkAPIVersion(rawQuery string, supported []string) (string, *serviceError) {
	v, ok := queryValue(rawQuery, "api-version")
	if !ok || v == "" {
		return "", &serviceError{http.StatusBadRequest, CodeBadParameter, "The 'api-version' query parameter is missing. Specify an api-version, for example api-version=" + LatestAPIVersion + ".", ""}
	}
	for _, s := range supported {
		if v == s {
			return s, nil
		}
	}
	if u, err := url.QueryUnescape(v); err == nil {
		v = u
	}
	return "", &serviceError{http.StatusBadRequest, CodeBadParameter, fmt.Sprintf("The specified version (%s) is not recognized. Consider using the latest supported version (%s).", v, LatestAPIVersion), ""}
}

// serveHTTP runs a data-plane request through faults, auth, throttling, validation
// and the operation, and counts it.
func (v *Vault) serveHTTP(w http.ResponseWriter, r *http.Request, base string, viaHost bool) {
	op, name, version, routeOK := parseRoute(r.Method, r.URL.Path)
	seq := v.seq.Add(1)
	fs := v.faults.Load()
	f := &fs.f
	if viaHost && f.Unreachable {
		dropConnection(w)
		return
	}
	if f.DropRate > 0 && chance(v.seed, seq, saltDrop) < f.DropRate && dropConnection(w) {
		v.counters.add(op, StatusDropped)
		return
	}
	if f.Latency > 0 || f.LatencyJitter > 0 {
		sleepCtx(r, f.Latency+time.Duration(chance(v.seed, seq, saltJitter)*float64(f.LatencyJitter)))
	}
	if f.ErrorRate > 0 && chance(v.seed, seq, saltError) < f.ErrorRate {
		status := f.ErrorStatus
		if status == 0 {
			status = http.StatusInternalServerError
			if chance(v.seed, seq, saltStatus) < 0.5 {
				status = http.StatusServiceUnavailable
			}
		}
		se := &serviceError{status, CodeInternalServerError, msgInternal, ""}
		if status == http.StatusServiceUnavailable {
			se = &serviceError{status, CodeServiceUnavailable, msgUnavailable, ""}
		}
		v.counters.add(op, writeServiceError(w, se))
		return
	}
	now := time.Now().Unix()
	ti, status := v.authenticate(w, r, viaHost, now)
	if ti == nil {
		v.counters.add(op, status)
		return
	}
	if status := v.throttle(w, fs, seq); status != 0 {
		v.counters.add(op, status)
		return
	}
	apiVersion, se := checkAPIVersion(r.URL.RawQuery, v.e.cfg.APIVersions)
	if se != nil {
		v.counters.add(op, writeServiceError(w, se))
		return
	}
	if !routeOK {
		v.counters.add(op, writeServiceError(w, &serviceError{http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method), ""}))
		return
	}
	if name != "" {
		if err := checkKeyName(name); err != nil {
			v.counters.add(op, writeServiceError(w, statusFor(err, name)))
			return
		}
	}
	if status := v.authorize(w, ti, op); status != 0 {
		v.counters.add(op, status)
		return
	}
	v.counters.add(op, v.dispatch(w, r, op, name, version, base, apiVersion, now, f))
}

// throttle answers 429 when a fault or a token bucket says so.
func (v *Vault) throttle(w http.ResponseWriter, fs *faultState, seq uint64) int {
	limited := false
	for {
		n := v.throttleNext.Load()
		if n <= 0 {
			break
		}
		if v.throttleNext.CompareAndSwap(n, n-1) {
			limited = true
			break
		}
	}
	if !limited && fs.f.ThrottleRate > 0 && chance(v.seed, seq, saltThrottle) < fs.f.ThrottleRate {
		limited = true
	}
	if !limited && fs.limiter != nil && !fs.limiter.Allow() {
		limited = true
	}
	if !limited && v.subLim != nil && !v.subLim.Allow() {
		limited = true
	}
	if !limited {
		return 0
	}
	if !fs.f.OmitRetryAfter {
		w.Header()["Retry-After"] = []string{retryAfterValue(fs)}
	}
	return writeServiceError(w, &serviceError{http.StatusTooManyRequests, CodeThrottled, msgThrottled, ""})
}

func (v *Vault) dispatch(w http.ResponseWriter, r *http.Request, op opCode, name, version, base, apiVersion string, now int64, f *Faults) int {
	switch op {
	case opGetKey:
		kv, err := v.getVersion(name, version)
		if err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		return v.writeBundle(w, base, apiVersion, kv)
	case opListKeys, opListKeyVersions, opListDeletedKeys:
		return v.serveList(w, r, op, name, base, apiVersion, f)
	case opCreateKey:
		var p createParams
		if se := decodeBody(r, &p); se != nil {
			return writeServiceError(w, se)
		}
		spec, err := p.spec()
		if err == nil {
			var kv *keyVersion
			if kv, err = v.createKey(name, spec, now); err == nil {
				status := v.writeBundle(w, base, apiVersion, kv)
				v.e.events.keyCreated(v, kv)
				return status
			}
		}
		return writeServiceError(w, statusFor(err, name))
	case opImportKey:
		var p importParams
		if se := decodeBody(r, &p); se != nil {
			return writeServiceError(w, se)
		}
		spec, mat, err := p.spec()
		if err == nil {
			var kv *keyVersion
			if kv, err = v.importKey(name, spec, mat, now); err == nil {
				status := v.writeBundle(w, base, apiVersion, kv)
				v.e.events.keyCreated(v, kv)
				return status
			}
		}
		return writeServiceError(w, statusFor(err, name))
	case opUpdateKey:
		var p updateParams
		if se := decodeBody(r, &p); se != nil {
			return writeServiceError(w, se)
		}
		kv, err := v.updateKey(name, version, p.update(), now)
		if err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		status := v.writeBundle(w, base, apiVersion, kv)
		v.e.events.expiryChanged(v, kv)
		return status
	case opRotateKey:
		kv, err := v.rotateKey(name, now)
		if err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		status := v.writeBundle(w, base, apiVersion, kv)
		v.e.events.keyCreated(v, kv)
		return status
	case opDeleteKey:
		d, err := v.deleteKey(name, now)
		if err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		return v.writeDeletedBundle(w, base, apiVersion, deletedItem{kv: d.entry.latest, name: d.entry.name, deletedDate: d.deletedDate, purgeDate: d.purgeDate})
	case opGetDeletedKey:
		d, err := v.getDeleted(name)
		if err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		return v.writeDeletedBundle(w, base, apiVersion, deletedItem{kv: d.entry.latest, name: d.entry.name, deletedDate: d.deletedDate, purgeDate: d.purgeDate})
	case opRecoverDeletedKey:
		kv, err := v.recoverKey(name)
		if err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		status := v.writeBundle(w, base, apiVersion, kv)
		v.e.events.expiryChanged(v, kv)
		return status
	case opPurgeDeletedKey:
		if err := v.purgeKey(name); err != nil {
			return writeServiceError(w, statusFor(err, name))
		}
		w.Header()["X-Ms-Keyvault-Region"] = v.e.regionHdr
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	return writeServiceError(w, &serviceError{http.StatusNotFound, CodeNotFound, "The requested resource was not found.", ""})
}

func (v *Vault) writeBundle(w http.ResponseWriter, base, apiVersion string, kv *keyVersion) int {
	bp := getBuf()
	b := append(*bp, `{"key":{"kid":"`...)
	b = append(b, base...)
	b = append(b, kv.bundle(&v.attrs, apiVersion == KeySizeAPIVersion)...)
	status := v.writeBody(w, http.StatusOK, b)
	*bp = b
	putBuf(bp)
	return status
}

func (v *Vault) appendDeletedPrefix(b []byte, base string, d deletedItem) []byte {
	b = append(b, `{"recoveryId":"`...)
	b = append(b, base...)
	b = append(b, "/deletedkeys/"...)
	b = append(b, d.name...)
	b = append(b, `","deletedDate":`...)
	b = appendInt(b, d.deletedDate)
	b = append(b, `,"scheduledPurgeDate":`...)
	b = appendInt(b, d.purgeDate)
	return b
}

func (v *Vault) writeDeletedBundle(w http.ResponseWriter, base, apiVersion string, d deletedItem) int {
	bp := getBuf()
	b := v.appendDeletedPrefix(*bp, base, d)
	b = append(b, `,"key":{"kid":"`...)
	b = append(b, base...)
	b = append(b, d.kv.bundle(&v.attrs, apiVersion == KeySizeAPIVersion)...)
	status := v.writeBody(w, http.StatusOK, b)
	*bp = b
	putBuf(bp)
	return status
}

// serveList answers one page of /keys, /keys/{name}/versions or /deletedkeys.
func (v *Vault) serveList(w http.ResponseWriter, r *http.Request, op opCode, name, base, apiVersion string, f *Faults) int {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return writeServiceError(w, &serviceError{http.StatusBadRequest, CodeBadParameter, "The request query string is invalid.", ""})
	}
	maxResults := MaxPageSize
	mr := q.Get("maxresults")
	if mr != "" {
		n, err := strconv.Atoi(mr)
		if err != nil || n < 1 || n > MaxPageSize {
			return writeServiceError(w, &serviceError{http.StatusBadRequest, CodeBadParameter,
				fmt.Sprintf("Invalid maxresults value '%s'. The value must be an integer between 1 and %d.", mr, MaxPageSize), ""})
		}
		maxResults = n
	}
	var c cursor
	if tok := q.Get("$skiptoken"); tok != "" {
		var ok bool
		if c, ok = decodeSkipToken(tok); !ok {
			return writeServiceError(w, &serviceError{http.StatusBadRequest, CodeBadParameter, "The specified $skiptoken is invalid.", ""})
		}
	}
	size := pageSize(v.seed, f.IrregularPages, c, maxResults)
	bp := getBuf()
	b := append(*bp, `{"value":[`...)
	var last, path string
	var more bool
	switch op {
	case opListKeys, opListKeyVersions:
		kp := kvBufPool.Get().(*[]*keyVersion)
		var items []*keyVersion
		withVersion := op == opListKeyVersions
		if withVersion {
			items, last, more = v.pageVersions(name, c.after, size, *kp)
			path = "/keys/" + name + "/versions"
		} else {
			items, last, more = v.pageKeys(c.after, size, *kp)
			path = "/keys"
		}
		for i, kv := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"kid":"`...)
			b = append(b, base...)
			b = append(b, kv.item(&v.attrs, withVersion)...)
		}
		clear(items)
		*kp = items[:0]
		kvBufPool.Put(kp)
	case opListDeletedKeys:
		var items []deletedItem
		items, last, more = v.pageDeleted(c.after, size)
		path = "/deletedkeys"
		for i, d := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = v.appendDeletedPrefix(b, base, d)
			b = append(b, `,"kid":"`...)
			b = append(b, base...)
			b = append(b, d.kv.item(&v.attrs, false)...)
		}
	}
	next := cursor{after: last, page: c.page + 1}
	if size == 0 {
		next.empties = c.empties + 1
	}
	b = appendNextLink(b, more, base, path, apiVersion, next, mr)
	status := v.writeBody(w, http.StatusOK, b)
	*bp = b
	putBuf(bp)
	return status
}

// decodeBody reads a JSON request body.
func decodeBody(r *http.Request, dst any) *serviceError {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil || len(body) > maxBodyBytes {
		return &serviceError{http.StatusBadRequest, CodeBadParameter, "The request body could not be read.", ""}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return &serviceError{http.StatusBadRequest, CodeBadParameter, "The request body is missing.", ""}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return &serviceError{http.StatusBadRequest, CodeBadParameter, "Property has invalid value: " + err.Error(), ""}
	}
	return nil
}

// attrParams is the wire form of key attributes in requests.
type attrParams struct {
	Enabled    *bool  `json:"enabled"`
	Nbf        *int64 `json:"nbf"`
	Exp        *int64 `json:"exp"`
	Exportable *bool  `json:"exportable"`
}

func unixPtr(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	t := time.Unix(*p, 0).UTC()
	return &t
}

type createParams struct {
	Kty            string            `json:"kty"`
	KeySize        *int              `json:"key_size"`
	Crv            string            `json:"crv"`
	KeyOps         []string          `json:"key_ops"`
	Attributes     *attrParams       `json:"attributes"`
	Tags           map[string]string `json:"tags"`
	PublicExponent *int              `json:"public_exponent"`
	ReleasePolicy  json.RawMessage   `json:"release_policy"`
}

func (p createParams) spec() (KeySpec, error) {
	s := KeySpec{Kty: p.Kty, Curve: p.Crv, KeyOps: p.KeyOps, Tags: p.Tags}
	if p.KeySize != nil {
		s.KeySize = *p.KeySize
		if s.KeySize == 0 {
			return s, badParam("The key size 0 is not supported.")
		}
	}
	if p.PublicExponent != nil && *p.PublicExponent != 65537 && *p.PublicExponent != 3 {
		return s, badParam(fmt.Sprintf("The public exponent %d is not supported.", *p.PublicExponent))
	}
	if a := p.Attributes; a != nil {
		s.Enabled, s.NotBefore, s.Expires = a.Enabled, unixPtr(a.Nbf), unixPtr(a.Exp)
		if a.Exportable != nil {
			s.Exportable = *a.Exportable
		}
	}
	if s.Exportable && len(p.ReleasePolicy) == 0 {
		return s, badParam("Exportable keys must have a release policy.")
	}
	return s, nil
}

type jwkParams struct {
	Kty    string   `json:"kty"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	K      string   `json:"k"`
	KeyOps []string `json:"key_ops"`
}

type importParams struct {
	Key        *jwkParams        `json:"key"`
	HSM        *bool             `json:"Hsm"`
	Attributes *attrParams       `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

// spec converts an import request into a KeySpec and public material.
func (p importParams) spec() (KeySpec, *material, error) {
	if p.Key == nil {
		return KeySpec{}, nil, badParam("The parameter 'key' is required.")
	}
	hsm := p.HSM != nil && *p.HSM
	k := p.Key
	s := KeySpec{KeyOps: k.KeyOps, Tags: p.Tags}
	if a := p.Attributes; a != nil {
		s.Enabled, s.NotBefore, s.Expires = a.Enabled, unixPtr(a.Nbf), unixPtr(a.Exp)
	}
	var mat *material
	switch k.Kty {
	case KtyRSA, KtyRSAHSM:
		n, err1 := decodeB64(k.N)
		e, err2 := decodeB64(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 {
			return s, nil, badParam("RSA key must have 'n' and 'e' encoded as base64url.")
		}
		s.Kty = KtyRSA
		if hsm || k.Kty == KtyRSAHSM {
			s.Kty = KtyRSAHSM
		}
		mat = newRSAMaterial(n, e)
		s.KeySize = new(big.Int).SetBytes(n).BitLen()
		mat.size = s.KeySize
	case KtyEC, KtyECHSM:
		if curveSize(k.Crv) == 0 {
			return s, nil, badParam(fmt.Sprintf("The curve '%s' is not supported.", k.Crv))
		}
		x, err1 := decodeB64(k.X)
		y, err2 := decodeB64(k.Y)
		if err1 != nil || err2 != nil || len(x) == 0 || len(y) == 0 {
			return s, nil, badParam("EC key must have 'x' and 'y' encoded as base64url.")
		}
		s.Kty = KtyEC
		if hsm || k.Kty == KtyECHSM {
			s.Kty = KtyECHSM
		}
		s.Curve = k.Crv
		s.KeySize = curveSize(k.Crv)
		mat = newECMaterial(k.Crv, x, y)
	case "oct", KtyOctHSM:
		raw, err := decodeB64(k.K)
		if err != nil || (len(raw) != 16 && len(raw) != 24 && len(raw) != 32) {
			return s, nil, badParam("oct key must have 'k' of 128, 192 or 256 bits.")
		}
		s.Kty = "oct" // refused by vaults; a managed HSM pool keeps it as oct-HSM
		if hsm || k.Kty == KtyOctHSM {
			s.Kty = KtyOctHSM
		}
		s.KeySize = len(raw) * 8
		mat = &material{size: s.KeySize}
	default:
		return s, nil, badParam(fmt.Sprintf("The key type '%s' is not supported.", k.Kty))
	}
	return s, mat, nil
}

type updateParams struct {
	Attributes    *attrParams       `json:"attributes"`
	KeyOps        []string          `json:"key_ops"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

func (p updateParams) update() KeyUpdate {
	u := KeyUpdate{KeyOps: p.KeyOps, Tags: p.Tags}
	if a := p.Attributes; a != nil {
		u.Enabled = a.Enabled
		if a.Nbf != nil {
			u.NotBefore = unixPtr(a.Nbf)
		}
		if a.Exp != nil {
			u.Expires = unixPtr(a.Exp)
		}
	}
	return u
}
