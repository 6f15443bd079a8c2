package exoscale

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Restrictions is a KeySpec checked against the catalogue: known operations
// grouped by service, tags as services, resources parsed.
type Restrictions struct {
	Unrestricted bool
	// Operations by service, each list sorted; a service granted whole by a
	// tag has no entry here.
	Operations map[string][]string
	// Services granted whole by a tag, sorted.
	Services []string
	// Buckets named by sos/bucket: resources, sorted.
	Buckets []string
	// Products named by partner/product: resources (AccessKeyV2 only), sorted.
	Products []string
}

// Resolve checks a KeySpec against the catalogue. Errors are *SpecError.
func Resolve(spec KeySpec, cat *catalog.Catalog) (Restrictions, error) {
	r := Restrictions{Unrestricted: spec.Unrestricted, Operations: map[string][]string{}}
	if spec.Unrestricted {
		if len(spec.Operations)+len(spec.Tags)+len(spec.Resources) > 0 {
			return r, &SpecError{Reason: ReasonUnsupported, Message: "an unrestricted key takes no operations, tags or resources"}
		}
		return r, nil
	}
	services := map[string]bool{}
	for _, tag := range spec.Tags {
		service := catalog.NormalizeTag(tag)
		if !cat.HasService(service) {
			return r, &SpecError{Reason: ReasonUnknownTag, Message: fmt.Sprintf(
				"unknown tag %q: tags are the services %s", tag, strings.Join(cat.Services(), ", "))}
		}
		services[service] = true
	}
	for _, name := range spec.Operations {
		op, ok := cat.Lookup(name)
		if !ok {
			message := fmt.Sprintf("unknown operation %q", name)
			if suggestion := cat.Suggest(name); suggestion != "" {
				message += fmt.Sprintf(": did you mean %q?", suggestion)
			}
			return r, &SpecError{Reason: ReasonUnknownOperation, Message: message}
		}
		if !services[op.Service] && !slices.Contains(r.Operations[op.Service], name) {
			r.Operations[op.Service] = append(r.Operations[op.Service], name)
		}
	}
	if len(r.Operations) == 0 && len(services) == 0 {
		return r, &SpecError{Reason: ReasonUnsupported, Message: "a restricted key needs at least one operation or tag"}
	}
	for service := range services {
		r.Services = append(r.Services, service)
		delete(r.Operations, service) // the tag grants the whole service
	}
	for _, ops := range r.Operations {
		sort.Strings(ops)
	}
	sort.Strings(r.Services)

	for _, res := range spec.Resources {
		domain, kind, name, err := ParseResource(res)
		if err != nil {
			return r, err
		}
		switch {
		case domain == "sos" && kind == "bucket":
			if !slices.Contains(r.Buckets, name) {
				r.Buckets = append(r.Buckets, name)
			}
		case domain == "partner" && kind == "product":
			if !slices.Contains(r.Products, name) {
				r.Products = append(r.Products, name)
			}
		default:
			return r, &SpecError{Reason: ReasonInvalidResource, Message: fmt.Sprintf(
				"resource %q: the types are sos/bucket and partner/product", res)}
		}
	}
	sort.Strings(r.Buckets)
	sort.Strings(r.Products)
	if len(r.Buckets) > 0 && len(r.Operations["sos"]) == 0 && !slices.Contains(r.Services, "sos") {
		return r, &SpecError{Reason: ReasonInvalidResource, Message: fmt.Sprintf(
			"resource sos/bucket:%s restricts sos operations, but the key is granted none: add sos operations or the sos tag", r.Buckets[0])}
	}
	return r, nil
}

// ParseResource splits DOMAIN/TYPE:NAME.
func ParseResource(s string) (domain, kind, name string, err error) {
	head, name, ok := strings.Cut(s, ":")
	if ok {
		domain, kind, ok = strings.Cut(head, "/")
	}
	if !ok || domain == "" || kind == "" || name == "" {
		return "", "", "", &SpecError{Reason: ReasonInvalidResource, Message: fmt.Sprintf(
			"resource %q: want DOMAIN/TYPE:NAME, e.g. sos/bucket:my-bucket", s)}
	}
	return domain, kind, name, nil
}

// CompilePolicy turns a KeySpec into an IAM v3 role policy: default deny;
// a tag allows its service; operations become an `operation in [...]` rule
// of their service; sos/bucket: resources add `parameters.bucket` to the sos
// rule. An unrestricted spec allows every service.
func CompilePolicy(spec KeySpec, cat *catalog.Catalog) (policy.Policy, error) {
	r, err := Resolve(spec, cat)
	if err != nil {
		return policy.Policy{}, err
	}
	if r.Unrestricted {
		return policy.Policy{DefaultServiceStrategy: "allow", Services: map[string]policy.ServicePolicy{}}, nil
	}
	if len(r.Products) > 0 {
		return policy.Policy{}, &SpecError{Reason: ReasonUnsupported, Message: fmt.Sprintf(
			"resource partner/product:%s cannot be expressed on IAMv3: use an AccessKeyV2 issuer or remove it", r.Products[0])}
	}
	services := map[string]policy.ServicePolicy{}
	grant := func(service string, ops []string) {
		var conditions []string
		if len(ops) > 0 {
			conditions = append(conditions, "operation in "+celList(ops))
		}
		if service == "sos" && len(r.Buckets) > 0 {
			if len(r.Buckets) == 1 {
				conditions = append(conditions, "parameters.bucket == "+celString(r.Buckets[0]))
			} else {
				conditions = append(conditions, "parameters.bucket in "+celList(r.Buckets))
			}
		}
		if len(conditions) == 0 {
			services[service] = policy.ServicePolicy{Type: "allow"}
			return
		}
		services[service] = policy.ServicePolicy{Type: "rules", Rules: []policy.PolicyRule{{
			Action: "allow", Expression: strings.Join(conditions, " && "),
		}}}
	}
	for _, service := range r.Services {
		grant(service, nil)
	}
	for service, ops := range r.Operations {
		grant(service, ops)
	}
	return policy.Policy{DefaultServiceStrategy: "deny", Services: services}, nil
}

// celQuote escapes a CEL string literal's content.
var celQuote = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

func celString(s string) string { return "'" + celQuote.Replace(s) + "'" }

func celList(items []string) string {
	quoted := make([]string, len(items))
	for i, item := range items {
		quoted[i] = celString(item)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// Decide says whether a legacy access key with these restrictions may call
// op on bucket (empty: a call naming no bucket), and why. Tags are whole
// services; sos/bucket: resources narrow every sos operation to the buckets
// named, so a sos call naming no bucket is refused.
func (r Restrictions) Decide(op catalog.Operation, bucket string) (bool, string) {
	if r.Unrestricted {
		return true, "the key is unrestricted"
	}
	var grant string
	switch {
	case slices.Contains(r.Services, op.Service):
		grant = "tag " + op.Service + " grants the whole service"
	case slices.Contains(r.Operations[op.Service], op.Name):
		grant = "operation " + op.Name + " is listed"
	default:
		return false, fmt.Sprintf("operation %s is not listed and no tag grants service %s", op.Name, op.Service)
	}
	if op.Service != "sos" || len(r.Buckets) == 0 {
		return true, grant
	}
	if bucket == "" {
		return false, fmt.Sprintf("%s, but the key is narrowed to buckets %s and the call names none", grant, strings.Join(r.Buckets, ", "))
	}
	if !slices.Contains(r.Buckets, bucket) {
		return false, fmt.Sprintf("%s, but bucket %s is not among the key's resources (%s)", grant, bucket, strings.Join(r.Buckets, ", "))
	}
	return true, fmt.Sprintf("%s and resource sos/bucket:%s names the bucket", grant, bucket)
}
