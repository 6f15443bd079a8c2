package exoscale

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// InexpressibleError names the parts of a role policy that no KeySpec
// compiles to. A policy with such a part is refused whole, never read
// wider or narrower than it is.
type InexpressibleError struct {
	Parts []string
}

func (e *InexpressibleError) Error() string {
	return "the policy cannot be expressed as operations, tags and resources: " + strings.Join(e.Parts, "; ")
}

// DecompilePolicy is CompilePolicy's inverse: the KeySpec (operations, tags,
// resources) whose policy grants what p grants. It reads the shapes the
// compiler writes, whatever their order or spelling: a service of type allow
// (a tag); allow rules conditioned on `operation` by == or in, and on
// `parameters.bucket` for sos (resources). Every other part is named in an
// *InexpressibleError.
func DecompilePolicy(p policy.Policy, cat *catalog.Catalog) (KeySpec, error) {
	if _, err := policy.Compile(p); err != nil {
		return KeySpec{}, fmt.Errorf("invalid policy: %w", err)
	}
	if p.Empty() {
		return KeySpec{Unrestricted: true}, nil // Exoscale reads an empty policy as allowing everything
	}
	if p.DefaultServiceStrategy == "" {
		p.DefaultServiceStrategy = "deny"
	}
	var spec KeySpec
	var parts []string
	inexpressible := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }

	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)

	if p.DefaultServiceStrategy == "allow" {
		for _, name := range names {
			if p.Services[name].Type != "allow" {
				inexpressible("services.%s: type %s under default-service-strategy allow (exokey grants by adding rights to nothing, not by taking them from everything)",
					name, p.Services[name].Type)
			}
		}
		if len(parts) > 0 {
			return KeySpec{}, &InexpressibleError{Parts: parts}
		}
		return KeySpec{Unrestricted: true}, nil
	}

	var buckets []string
	bucketsSeen := false
	for _, name := range names {
		service := p.Services[name]
		switch service.Type {
		case "deny": // what the default strategy does already
		case "allow":
			spec.Tags = append(spec.Tags, name)
		case "rules":
			ops, ruleBuckets, whole, ruleParts := readRules(name, service.Rules, cat)
			parts = append(parts, ruleParts...)
			if len(ruleParts) > 0 {
				continue
			}
			if whole {
				spec.Tags = append(spec.Tags, name)
			} else {
				spec.Operations = append(spec.Operations, ops...)
			}
			if ruleBuckets != nil {
				buckets, bucketsSeen = ruleBuckets, true
			}
		}
	}
	if len(parts) > 0 {
		return KeySpec{}, &InexpressibleError{Parts: parts}
	}
	if bucketsSeen {
		for _, bucket := range buckets {
			spec.Resources = append(spec.Resources, "sos/bucket:"+bucket)
		}
	}
	if len(spec.Operations) == 0 && len(spec.Tags) == 0 {
		return KeySpec{}, &InexpressibleError{Parts: []string{"the policy grants nothing: an AccessKey needs at least one operation or tag"}}
	}
	sort.Strings(spec.Operations)
	return spec, nil
}

// readRules reads one service's rules: each an allow rule whose terms are
// an operation condition, a bucket condition (sos only), or both. whole is
// a rule without an operation condition: the whole service. Buckets must be
// the same in every rule, as the compiler writes them: an AccessKey's
// buckets narrow all its sos operations.
func readRules(service string, rules []policy.PolicyRule, cat *catalog.Catalog) (ops, buckets []string, whole bool, parts []string) {
	inexpressible := func(i int, format string, args ...any) {
		parts = append(parts, fmt.Sprintf("services.%s.rules[%d]: ", service, i)+fmt.Sprintf(format, args...))
	}
	withBuckets, withoutBuckets := 0, 0
	for i, rule := range rules {
		if rule.Action != "allow" {
			inexpressible(i, "a %s rule (exokey compiles allow rules only)", rule.Action)
			continue
		}
		if len(rule.Resources) > 0 {
			inexpressible(i, "resources %v (exokey names buckets through parameters.bucket)", rule.Resources)
			continue
		}
		terms, err := policy.Conjuncts(rule.Expression)
		if err != nil {
			inexpressible(i, "%v", err)
			continue
		}
		var ruleOps, ruleBuckets []string
		opTerms, bucketTerms := 0, 0
		for _, term := range terms {
			switch term.Subject {
			case policy.SubjectOperation:
				opTerms++
				ruleOps = term.Values
			case policy.SubjectBucket:
				bucketTerms++
				ruleBuckets = sortedSet(term.Values)
			}
		}
		switch {
		case opTerms > 1 || bucketTerms > 1:
			inexpressible(i, "%q conditions operation or parameters.bucket twice", rule.Expression)
			continue
		case bucketTerms == 1 && service != "sos":
			inexpressible(i, "a parameters.bucket condition on service %s (buckets narrow sos only)", service)
			continue
		case bucketTerms == 1 && buckets != nil && !slices.Equal(buckets, ruleBuckets):
			inexpressible(i, "buckets %v differ from %v of an earlier rule (an AccessKey's buckets narrow all its sos operations)", ruleBuckets, buckets)
			continue
		}
		switch {
		case bucketTerms == 1:
			buckets = ruleBuckets
			withBuckets++
		case service == "sos" && opTerms == 1 && allBucketless(ruleOps, cat):
			// list-buckets names no bucket: allowed before the bucket rule
		default:
			withoutBuckets++
		}
		if opTerms == 0 {
			whole = true
			continue
		}
		for _, name := range ruleOps {
			op, known := cat.Lookup(name)
			switch {
			case !known:
				inexpressible(i, "operation %q is not in the catalogue", name)
			case op.Class != service:
				inexpressible(i, "operation %s belongs to class %q, not %s", name, op.Class, service)
			case !slices.Contains(ops, name):
				ops = append(ops, name)
			}
		}
	}
	if withBuckets > 0 && withoutBuckets > 0 {
		parts = append(parts, fmt.Sprintf("services.%s: some rules name buckets and some do not (an AccessKey's buckets narrow all its sos operations)", service))
	}
	if whole {
		ops = nil // the tag covers the operations of the other rules
	}
	return ops, buckets, whole, parts
}

func sortedSet(values []string) []string {
	out := slices.Clone(values)
	sort.Strings(out)
	return slices.Compact(out)
}

// allBucketless reports whether every one of names is an operation that
// names no bucket.
func allBucketless(names []string, cat *catalog.Catalog) bool {
	for _, name := range names {
		if op, ok := cat.Lookup(name); !ok || !op.Bucketless {
			return false
		}
	}
	return true
}
