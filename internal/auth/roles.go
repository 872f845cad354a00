package auth

import (
	"fmt"
	"slices"
)

// Role is a user's role. Exactly three exist: [RoleAdmin], [RoleOperator]
// and [RoleViewer].
type Role string

// The roles.
const (
	// RoleAdmin may do everything, including user administration.
	RoleAdmin Role = "admin"
	// RoleOperator may start and cancel synchronizations and read everything.
	RoleOperator Role = "operator"
	// RoleViewer may only read.
	RoleViewer Role = "viewer"
)

// Perm is a permission checked by an API endpoint. Its string form is
// "<resource>:<action>", e.g. "jobs:write".
type Perm string

// The permissions.
const (
	// PermJobsRead: list and get synchronization jobs, follow their events.
	PermJobsRead Perm = "jobs:read"
	// PermJobsWrite: create and cancel synchronization jobs.
	PermJobsWrite Perm = "jobs:write"
	// PermVaultsRead: list and get registered vaults.
	PermVaultsRead Perm = "vaults:read"
	// PermVaultsWrite: register, update and remove vaults.
	PermVaultsWrite Perm = "vaults:write"
	// PermKeysRead: query the key inventory.
	PermKeysRead Perm = "keys:read"
	// PermConnectionsRead: list and get Azure connections (never secrets).
	PermConnectionsRead Perm = "connections:read"
	// PermConnectionsWrite: create, update, delete and test connections.
	PermConnectionsWrite Perm = "connections:write"
	// PermSchedulesRead: list and get scheduler job configs.
	PermSchedulesRead Perm = "schedules:read"
	// PermSchedulesWrite: create, update and delete scheduler job configs.
	PermSchedulesWrite Perm = "schedules:write"
	// PermUsersAdmin: administer users and tokens of other users.
	PermUsersAdmin Perm = "users:admin"
)

// AllPerms lists every permission, in a stable order.
func AllPerms() []Perm {
	return []Perm{
		PermJobsRead, PermJobsWrite,
		PermVaultsRead, PermVaultsWrite,
		PermKeysRead,
		PermConnectionsRead, PermConnectionsWrite,
		PermSchedulesRead, PermSchedulesWrite,
		PermUsersAdmin,
	}
}

var rolePerms = map[Role][]Perm{
	RoleAdmin: AllPerms(),
	RoleOperator: {
		PermJobsRead, PermJobsWrite,
		PermVaultsRead, PermKeysRead, PermConnectionsRead, PermSchedulesRead,
	},
	RoleViewer: {
		PermJobsRead, PermVaultsRead, PermKeysRead, PermConnectionsRead, PermSchedulesRead,
	},
}

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool {
	_, ok := rolePerms[r]
	return ok
}

// Permissions returns a copy of the permissions granted to r (nil for an
// unknown role).
func (r Role) Permissions() []Perm { return slices.Clone(rolePerms[r]) }

// Principal is an authenticated caller.
type Principal struct {
	// Username is the authenticated user's name (the JWT sub claim).
	Username string
	// Role is the user's current role.
	Role Role
}

// Can reports whether p's role grants perm. The zero Principal can do nothing.
func (p Principal) Can(perm Perm) bool {
	return slices.Contains(rolePerms[p.Role], perm)
}

// Require returns nil when p may use perm, and otherwise an error wrapping
// [ErrForbidden] that names the role and the permission, e.g.
// "forbidden: role viewer lacks permission jobs:write".
func (p Principal) Require(perm Perm) error {
	if p.Can(perm) {
		return nil
	}
	role := string(p.Role)
	if role == "" {
		role = "(none)"
	}
	return fmt.Errorf("%w: role %s lacks permission %s", ErrForbidden, role, perm)
}
