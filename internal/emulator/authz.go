package emulator

import (
	"slices"
	"sort"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// grant is what a key may do: a legacy key's restrictions or a role's
// policy (with the organisation's). Operations are asked in either
// vocabulary: a grant translates to its own (docs/reference/exoscale-facts.md).
type grant interface {
	allows(op catalog.Operation, req policy.Request) bool
	// probes are parameter values worth trying when comparing two grants:
	// the bucket names a grant mentions.
	probes() []string
	// roleLevel is the grant without the organisation policy: what one key
	// is compared with another for inheritance, since the organisation
	// policy gates both alike.
	roleLevel() grant
}

// legacyGrant is a legacy access key's restrictions. Resources of the form
// sos/bucket:NAME limit the key's sos operations to calls on those buckets;
// a sos call that names no bucket is then refused (the emulator's choice:
// Exoscale documents no answer). The organisation policy does not gate
// legacy keys (the emulator's choice: Exoscale documents it for IAM v3).
type legacyGrant struct {
	cat          *catalog.Catalog
	unrestricted bool
	operations   map[string]bool
	buckets      []string
}

func (g legacyGrant) allows(op catalog.Operation, req policy.Request) bool {
	if g.unrestricted {
		return true
	}
	name := op.Name
	if op.Vocabulary == catalog.V3 {
		name = g.cat.LegacyName(op.Name) // get-object is held through get-sos-object
	}
	if !g.operations[name] {
		return false
	}
	if op.Tag == "sos" && len(g.buckets) > 0 {
		bucket, _ := req.Parameters["bucket"].(string)
		return slices.Contains(g.buckets, bucket)
	}
	return true
}

func (g legacyGrant) probes() []string { return g.buckets }
func (g legacyGrant) roleLevel() grant { return g }

// roleGrant is an IAM v3 key's role policy and the organisation policy,
// both of which must allow a request. A legacy S3 name is allowed when
// each of its S3 actions is.
type roleGrant struct {
	cat    *catalog.Catalog
	levels policy.Levels
}

func (g roleGrant) allows(op catalog.Operation, req policy.Request) bool {
	for _, action := range g.cat.V3Actions(op.Name) {
		target, ok := g.cat.Lookup(action)
		if !ok {
			return false
		}
		req.Class, req.Operation = target.Class, target.Name
		if !g.levels.Decide(req).Allowed {
			return false
		}
	}
	return true
}

func (g roleGrant) probes() []string { return g.levels.Literals() }

func (g roleGrant) roleLevel() grant {
	return roleGrant{cat: g.cat, levels: policy.Levels{Role: g.levels.Role}}
}

// beyond returns the operations child may call that parent may not,
// sorted: the reason a key cannot mint a key that holds more than itself.
// Grants are compared on calls without parameters and on calls naming each
// bucket either grant mentions, with the facts of a request unknown (a
// rule on source_ip grants nothing certain).
func beyond(parent, child grant, cat *catalog.Catalog) []string {
	parent, child = parent.roleLevel(), child.roleLevel()
	probeSets := []map[string]any{{}}
	for _, bucket := range append(slices.Clone(parent.probes()), child.probes()...) {
		probeSets = append(probeSets, map[string]any{"bucket": bucket})
	}
	_, childIsRole := child.(roleGrant)
	var missing []string
	for _, op := range cat.Operations() {
		if childIsRole && !op.Gated() {
			continue // no role grants get-operation: every IAM v3 key may call it
		}
		for _, params := range probeSets {
			req := policy.Request{Parameters: params}
			if child.allows(op, req) && !parent.allows(op, req) {
				missing = append(missing, op.Name)
				break
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// holds lists the operations of the legacy vocabulary a grant may call at
// all (with some parameters), for list-access-key-operations.
func holds(g grant, cat *catalog.Catalog) []catalog.Operation {
	probeSets := []map[string]any{{}}
	for _, bucket := range g.probes() {
		probeSets = append(probeSets, map[string]any{"bucket": bucket})
	}
	var ops []catalog.Operation
	for _, op := range cat.OperationsOf(false) {
		for _, params := range probeSets {
			if g.allows(op, policy.Request{Parameters: params}) {
				ops = append(ops, op)
				break
			}
		}
	}
	return ops
}
