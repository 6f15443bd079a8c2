package emulator

import (
	"slices"
	"sort"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// grant is what a key may do: a legacy key's restrictions or a role's policy.
type grant interface {
	allows(op catalog.Operation, parameters map[string]string) bool
	// probes are parameter values worth trying when comparing two grants:
	// the bucket names a grant mentions.
	probes() []string
}

// legacyGrant is a legacy access key's restrictions. Resources of the form
// sos/bucket:NAME limit the key's sos operations to calls on those buckets;
// a sos call that names no bucket is then refused (the emulator's choice,
// matching the policy compiler's parameters.bucket rule).
type legacyGrant struct {
	unrestricted bool
	operations   map[string]bool
	buckets      []string
}

func (g legacyGrant) allows(op catalog.Operation, parameters map[string]string) bool {
	if g.unrestricted {
		return true
	}
	if !g.operations[op.Name] {
		return false
	}
	if op.Service == "sos" && len(g.buckets) > 0 {
		return slices.Contains(g.buckets, parameters["bucket"])
	}
	return true
}

func (g legacyGrant) probes() []string { return g.buckets }

// roleGrant is an IAM v3 role's policy.
type roleGrant struct{ policy *policy.Compiled }

func (g roleGrant) allows(op catalog.Operation, parameters map[string]string) bool {
	return g.policy.Allows(op.Service, op.Name, parameters)
}

func (g roleGrant) probes() []string { return g.policy.Literals() }

// beyond returns the operations child may call that parent may not,
// sorted: the reason a key cannot mint a key that holds more than itself.
// Grants are compared on calls without parameters and on calls naming each
// bucket either grant mentions.
func beyond(parent, child grant, cat *catalog.Catalog) []string {
	probeSets := []map[string]string{{}}
	for _, bucket := range append(slices.Clone(parent.probes()), child.probes()...) {
		probeSets = append(probeSets, map[string]string{"bucket": bucket})
	}
	var missing []string
	for _, op := range cat.Operations() {
		for _, params := range probeSets {
			if child.allows(op, params) && !parent.allows(op, params) {
				missing = append(missing, op.Name)
				break
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// holds lists the operations a grant may call at all (with some
// parameters), for list-access-key-operations.
func holds(g grant, cat *catalog.Catalog) []catalog.Operation {
	probeSets := []map[string]string{{}}
	for _, bucket := range g.probes() {
		probeSets = append(probeSets, map[string]string{"bucket": bucket})
	}
	var ops []catalog.Operation
	for _, op := range cat.Operations() {
		for _, params := range probeSets {
			if g.allows(op, params) {
				ops = append(ops, op)
				break
			}
		}
	}
	return ops
}
