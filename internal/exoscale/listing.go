package exoscale

import (
	"context"
	"errors"

	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Listing is what an issuer's organisation holds at Exoscale, read with one
// list call per kind (list-iam-roles and list-api-keys, or
// list-access-keys): every key and, on IAM v3, every role with its labels
// and policy. It is the input of exokey's inventory.
type Listing struct {
	// Keys maps every key's ID to its role's ID ("" for a legacy access key).
	Keys map[string]string
	// Roles are the organisation's IAM v3 roles by ID; nil on AccessKeyV2.
	Roles map[string]Role
}

// Role is an IAM v3 role as a list answers it.
type Role struct {
	Name   string
	Labels map[string]string
	// Policy is the role's policy as Exoscale holds it now: anyone with
	// IAM rights in the organisation may have edited it.
	Policy policy.Policy
}

// ErrNoRoles is returned by PutPolicy where keys have no role to edit.
var ErrNoRoles = errors.New("legacy access keys have no role policy: they cannot be changed, only replaced")

// listAll is the List of both backends' wire: one call per kind.
type lister interface {
	List(ctx context.Context) (Listing, error)
}

var (
	_ lister = (*iamv3Keys)(nil)
	_ lister = (*legacyKeys)(nil)
)
