package auth

import (
	"errors"
	"testing"
)

func TestRolePermissions(t *testing.T) {
	t.Parallel()
	want := map[Role]map[Perm]bool{
		RoleAdmin: {PermJobsRead: true, PermJobsWrite: true, PermVaultsRead: true, PermVaultsWrite: true,
			PermKeysRead: true, PermConnectionsRead: true, PermConnectionsWrite: true, PermUsersAdmin: true,
			PermSchedulesRead: true, PermSchedulesWrite: true},
		RoleOperator: {PermJobsRead: true, PermJobsWrite: true, PermVaultsRead: true, PermKeysRead: true, PermConnectionsRead: true, PermSchedulesRead: true},
		RoleViewer:   {PermJobsRead: true, PermVaultsRead: true, PermKeysRead: true, PermConnectionsRead: true, PermSchedulesRead: true},
		"":           {},
		"root":       {},
	}
	for role, perms := range want {
		for _, perm := range AllPerms() {
			p := Principal{Username: "u", Role: role}
			if got := p.Can(perm); got != perms[perm] {
				t.Errorf("role %q Can(%s) = %v, want %v", role, perm, got, perms[perm])
			}
			err := p.Require(perm)
			if perms[perm] != (err == nil) || err != nil && !errors.Is(err, ErrForbidden) {
				t.Errorf("role %q Require(%s) = %v", role, perm, err)
			}
		}
	}
}

func TestForbiddenNamesRoleAndPermission(t *testing.T) {
	t.Parallel()
	err := Principal{Username: "v", Role: RoleViewer}.Require(PermJobsWrite)
	if got, want := err.Error(), "forbidden: role viewer lacks permission jobs:write"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if !errors.Is(err, ErrForbidden) {
		t.Fatal(err)
	}
}
