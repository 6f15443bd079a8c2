package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// driftCorrection widens the roles of some of a namespace's AccessKeys out
// of band, as an admin in the portal would, and measures how long the
// manager takes to put each back, at the bench's drift period.
func (b *bench) driftCorrection(ctx context.Context, namespace string, n int) (map[string]any, error) {
	list := &iamv1beta1.AccessKeyList{}
	if err := b.c.List(ctx, list); err != nil {
		return nil, err
	}
	var roles []string
	for _, ak := range list.Items {
		if ak.Namespace == namespace && ak.Status.RoleID != "" && len(roles) < n {
			roles = append(roles, ak.Status.RoleID)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("no IAMv3 AccessKey in %s to widen", namespace)
	}
	key, secret := b.emu.Root()
	root, err := v3.NewClient(credentials.NewStaticCredentials(key, secret), v3.ClientOptWithEndpoint(v3.Endpoint(b.endpoint)))
	if err != nil {
		return nil, err
	}
	before := b.emu.Stats()
	// One widening every tenth of a period, so they fall at every point of
	// the inventory's cycle.
	widened := map[string]time.Time{}
	next := time.Now()
	var took []time.Duration
	deadline := time.Now().Add(4*b.o.driftPeriod + time.Minute)
	for (len(widened) > 0 || len(roles) > 0) && time.Now().Before(deadline) {
		if len(roles) > 0 && !time.Now().Before(next) {
			if _, err := root.UpdateIAMRolePolicy(ctx, v3.UUID(roles[0]), v3.IAMPolicy{DefaultServiceStrategy: "allow"}); err != nil {
				return nil, fmt.Errorf("widen role %s: %w", roles[0], err)
			}
			widened[roles[0]] = time.Now()
			roles, next = roles[1:], next.Add(b.o.driftPeriod/10)
		}
		for _, r := range b.emu.Roles() {
			if at, ok := widened[r.ID]; ok && r.Policy.DefaultServiceStrategy != "allow" {
				took = append(took, time.Since(at))
				delete(widened, r.ID)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(widened) > 0 || len(roles) > 0 {
		return nil, fmt.Errorf("%d widened roles were not put back in time", len(widened)+len(roles))
	}
	after := b.emu.Stats()
	slices.Sort(took)
	return map[string]any{
		"period": b.o.driftPeriod.String(), "widened": len(took),
		"median": took[len(took)/2].Round(100 * time.Millisecond).String(), "max": took[len(took)-1].Round(100 * time.Millisecond).String(),
		"updateCalls": after.Operations["update-iam-role-policy"] - before.Operations["update-iam-role-policy"] - len(took),
	}, nil
}
