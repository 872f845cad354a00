package akvemu

import (
	"fmt"
	"net/http"
	"strings"
)

// Permission is a Key Vault key permission that access rules can deny.
type Permission string

// Key permissions, as named in the service's 403 messages.
const (
	PermList    Permission = "list"
	PermGet     Permission = "get"
	PermCreate  Permission = "create"
	PermImport  Permission = "import"
	PermUpdate  Permission = "update"
	PermDelete  Permission = "delete"
	PermRecover Permission = "recover"
	PermPurge   Permission = "purge"
	PermRotate  Permission = "rotate"
)

var permBits = map[Permission]uint16{
	PermList: 1 << 0, PermGet: 1 << 1, PermCreate: 1 << 2, PermImport: 1 << 3, PermUpdate: 1 << 4,
	PermDelete: 1 << 5, PermRecover: 1 << 6, PermPurge: 1 << 7, PermRotate: 1 << 8,
}

// opPerm is the permission each operation needs.
var opPerm = [numOps]Permission{
	opListKeys: PermList, opListKeyVersions: PermList, opGetKey: PermGet, opCreateKey: PermCreate,
	opImportKey: PermImport, opUpdateKey: PermUpdate, opDeleteKey: PermDelete, opRotateKey: PermRotate,
	opListDeletedKeys: PermList, opGetDeletedKey: PermGet, opRecoverDeletedKey: PermRecover,
	opPurgeDeletedKey: PermPurge, opOther: "",
}

// AccessRule denies permissions on a vault to a principal (client id, or "*" for all).
type AccessRule struct {
	Principal string       `json:"principal" yaml:"principal"` // client id, or "*" for everyone
	Deny      []Permission `json:"deny" yaml:"deny"`           // denied permissions
}

// Validate reports unknown permissions.
func (a AccessRule) Validate() error {
	if a.Principal == "" {
		return badParam("access rule without principal")
	}
	for _, p := range a.Deny {
		if permBits[p] == 0 {
			return badParam(fmt.Sprintf("unknown permission %q", p))
		}
	}
	return nil
}

// accessTable is an immutable map of denied permissions, swapped atomically.
type accessTable struct {
	deny map[string]uint16 // lower-case client id or "*" -> bits
}

func (t *accessTable) denied(appid string, p Permission) bool {
	if len(t.deny) == 0 || p == "" {
		return false
	}
	bit := permBits[p]
	return t.deny[lower(appid)]&bit != 0 || t.deny["*"]&bit != 0
}

func (t *accessTable) rules() []AccessRule {
	out := make([]AccessRule, 0, len(t.deny))
	for who, bits := range t.deny {
		r := AccessRule{Principal: who}
		for _, p := range []Permission{PermList, PermGet, PermCreate, PermImport, PermUpdate, PermDelete, PermRecover, PermPurge, PermRotate} {
			if bits&permBits[p] != 0 {
				r.Deny = append(r.Deny, p)
			}
		}
		out = append(out, r)
	}
	return out
}

// SetAccess replaces the permissions denied to a principal ("*" for everyone);
// no permissions clears the rule.
func (v *Vault) SetAccess(principal string, deny ...Permission) error {
	rule := AccessRule{Principal: principal, Deny: deny}
	if err := rule.Validate(); err != nil {
		return err
	}
	for {
		old := v.access.Load()
		next := &accessTable{deny: make(map[string]uint16, len(old.deny)+1)}
		for k, b := range old.deny {
			next.deny[k] = b
		}
		var bits uint16
		for _, p := range deny {
			bits |= permBits[p]
		}
		if bits == 0 {
			delete(next.deny, lower(principal))
		} else {
			next.deny[lower(principal)] = bits
		}
		if v.access.CompareAndSwap(old, next) {
			return nil
		}
	}
}

// Access returns the vault's access rules.
func (v *Vault) Access() []AccessRule { return v.access.Load().rules() }

// authenticate checks the bearer token of a vault request. It returns the token
// info, or writes the 401 answer and returns nil.
func (v *Vault) authenticate(w http.ResponseWriter, r *http.Request, viaHost bool, now int64) (*tokenInfo, int) {
	e := v.e
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return nil, v.writeUnauthorized(w, viaHost, msgMissingToken)
	}
	ti, err := e.tokens.verify(strings.TrimSpace(h[7:]), now)
	if err != nil {
		return nil, v.writeUnauthorized(w, viaHost, err.Error())
	}
	if ti.tid != e.tokens.tenant {
		return nil, v.writeUnauthorized(w, viaHost, fmt.Sprintf("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, found https://sts.windows.net/%s/.", e.tokens.tenant, ti.tid))
	}
	want := v.audience(viaHost)
	if ti.aud != want && ti.aud != want+"/" {
		return nil, v.writeUnauthorized(w, viaHost, fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", want, ti.aud))
	}
	return ti, 0
}

// audience is the token audience (and challenge resource) the vault accepts:
// https://vault.azure.net or https://managedhsm.azure.net on its own listener, the
// host-routing resource on the shared one.
func (v *Vault) audience(viaHost bool) string {
	switch {
	case viaHost && v.kind == KindManagedHSM:
		return v.e.hsmHostResource
	case viaHost:
		return v.e.hostResource
	case v.kind == KindManagedHSM:
		return ManagedHSMAudience
	}
	return VaultAudience
}

// authorize answers 403 when the principal is denied the operation's permission.
func (v *Vault) authorize(w http.ResponseWriter, ti *tokenInfo, op opCode) int {
	p := opPerm[op]
	if !v.access.Load().denied(ti.appid, p) {
		return 0
	}
	if v.kind == KindManagedHSM {
		msg := fmt.Sprintf(msgHSMDenied, ti.appid, ti.oid, ti.tid, hsmAction(op), v.name, v.location)
		return writeServiceError(w, &serviceError{http.StatusForbidden, CodeForbidden, msg, "ForbiddenByRbac"})
	}
	if v.rbac {
		msg := fmt.Sprintf(msgRBACDenied, ti.appid, ti.oid, ti.tid, rbacAction(op), lower(v.ResourceID()), v.name, v.location)
		return writeServiceError(w, &serviceError{http.StatusForbidden, CodeForbidden, msg, "ForbiddenByRbac"})
	}
	msg := fmt.Sprintf(msgAccessDenied, ti.appid, ti.oid, ti.tid, p, v.name, v.location)
	return writeServiceError(w, &serviceError{http.StatusForbidden, CodeForbidden, msg, "AccessDenied"})
}

func rbacAction(op opCode) string {
	switch op {
	case opListKeys, opListKeyVersions, opGetKey:
		return "read"
	case opCreateKey, opImportKey, opUpdateKey, opRotateKey:
		return "write"
	case opDeleteKey:
		return "delete"
	case opListDeletedKeys, opGetDeletedKey:
		return "deletedKeys/read"
	case opRecoverDeletedKey:
		return "deletedKeys/recover/action"
	case opPurgeDeletedKey:
		return "deletedKeys/delete"
	}
	return "read"
}

// hsmAction is the managed HSM local RBAC data action an operation needs.
func hsmAction(op opCode) string {
	switch op {
	case opCreateKey:
		return "create"
	case opImportKey:
		return "import/action"
	case opUpdateKey:
		return "write/action"
	case opRotateKey:
		return "rotate/action"
	case opDeleteKey:
		return "delete"
	case opListDeletedKeys, opGetDeletedKey:
		return "deletedKeys/read/action"
	case opRecoverDeletedKey:
		return "deletedKeys/recover/action"
	case opPurgeDeletedKey:
		return "deletedKeys/delete"
	}
	return "read/action"
}

// writeUnauthorized answers 401 with the vault's Bearer challenge.
func (v *Vault) writeUnauthorized(w http.ResponseWriter, viaHost bool, message string) int {
	e := v.e
	h := w.Header()
	switch {
	case viaHost && v.kind == KindManagedHSM:
		h["Www-Authenticate"] = e.hsmHostChallenge
	case viaHost:
		h["Www-Authenticate"] = e.hostChallenge
	case v.kind == KindManagedHSM:
		h["Www-Authenticate"] = e.hsmChallenge
	default:
		h["Www-Authenticate"] = e.challenge
	}
	return writeServiceError(w, &serviceError{http.StatusUnauthorized, CodeUnauthorized, message, ""})
}
