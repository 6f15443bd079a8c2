package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Drift: what the inventory found wrong with an AccessKey's current key,
// confirmed and put right. A key reported gone is looked up first (the
// listing may predate it); a role whose policy was edited at Exoscale is
// put back in place, or, where the issuer's key may not edit it, its key is
// replaced and revoked at once.

// Kinds of drift, as the drift corrections metric labels them.
const (
	DriftWidened    = "widened"
	DriftNarrowed   = "narrowed"
	DriftChanged    = "changed"
	DriftRelabelled = "relabelled"
	DriftKeyGone    = "gone"
)

// observeDrift takes the inventory's finding of the AccessKey's current
// key, if there is one, and records in state what it turns out to be.
func (r *AccessKeyReconciler) observeDrift(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, state *keyState) error {
	f, ok := r.Inventory.take(ak)
	if !ok {
		return nil
	}
	switch f.kind {
	case driftGone, driftUnlisted:
		gone, err := lookUpCurrent(ctx, keys, status)
		if err != nil {
			return err
		}
		state.KeyGone = gone
		if gone {
			r.Metrics.driftCorrected(iss, DriftKeyGone)
		}
	case driftRelabelled:
		state.RoleDrifted = fmt.Sprintf("role %s of key %s no longer names this AccessKey and this cluster in its labels", status.RoleID, status.KeyID)
		r.Metrics.driftCorrected(iss, DriftRelabelled)
	case driftPolicy:
		return r.putPolicyBack(ctx, ak, status, iss, keys, f.found, state)
	}
	return nil
}

// putPolicyBack sets the role of the current key back to the policy its
// AccessKey compiles to, and says what had changed. A role the issuer's key
// may not edit is drift too: its key is replaced.
func (r *AccessKeyReconciler) putPolicyBack(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, found policy.Policy, state *keyState) error {
	spec := KeySpecOf(ak, status.KeyName)
	want, err := exoscale.CompilePolicy(spec, r.Catalog)
	if err != nil {
		return err
	}
	kind := compareGrants(want, found, r.Catalog)
	what := fmt.Sprintf("role %s of key %s was %s at Exoscale: it allowed %s, the AccessKey grants %s",
		status.RoleID, status.KeyID, kind, found.Describe(), want.Describe())
	err = keys.PutPolicy(ctx, status.RoleID, spec)
	switch {
	case errors.Is(err, exoscale.ErrNotFound):
		state.KeyGone = true // gone since the listing: its key grants nothing now
		r.Metrics.driftCorrected(iss, DriftKeyGone)
		return nil
	case exoscale.IsTerminal(err):
		state.RoleDrifted = what + fmt.Sprintf(", and %s %q may not put it back (%v)", iss.Kind, iss.Key.Name, err)
		r.Metrics.driftCorrected(iss, kind)
		return nil
	case err != nil:
		return fmt.Errorf("put back the policy of role %s: %w", status.RoleID, err)
	}
	logf.FromContext(ctx).Info("put back a drifted role policy", "keyID", status.KeyID, "roleID", status.RoleID, "drift", kind,
		"found", found.Describe(), "want", want.Describe())
	r.event(ak, corev1.EventTypeWarning, EventRoleDrifted, "Correct", "%s; its policy was put back", what)
	r.Metrics.driftCorrected(iss, kind)
	return nil
}

// compareGrants says how found differs from want: wider (it allows every
// operation want does, and more), narrower, or otherwise changed.
func compareGrants(want, found policy.Policy, cat *catalog.Catalog) string {
	wantOps, wantErr := holds(want, cat)
	foundOps, foundErr := holds(found, cat)
	if wantErr != nil || foundErr != nil {
		return DriftChanged
	}
	wider, narrower := !subset(foundOps, wantOps), !subset(wantOps, foundOps)
	switch {
	case wider && !narrower:
		return DriftWidened
	case narrower && !wider:
		return DriftNarrowed
	}
	return DriftChanged
}

// holds lists the operations a policy allows, sorted.
func holds(p policy.Policy, cat *catalog.Catalog) ([]string, error) {
	compiled, err := policy.Compile(p)
	if err != nil {
		return nil, err
	}
	ops := policy.Holds(compiled, cat, "").Held
	slices.Sort(ops)
	return ops, nil
}

// subset reports whether every element of small is in large (sorted).
func subset(small, large []string) bool {
	for _, s := range small {
		if _, ok := slices.BinarySearch(large, s); !ok {
			return false
		}
	}
	return true
}
