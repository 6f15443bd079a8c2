package exoscale

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Restrictions is a KeySpec checked against the catalogue in one API's
// vocabulary: known operations grouped by service (legacy tags on
// AccessKeyV2, IAM v3 classes on IAMv3), whole services, resources parsed.
type Restrictions struct {
	Unrestricted bool
	// Operations by service, each list sorted; a service granted whole has
	// no entry here.
	Operations map[string][]string
	// Services granted whole, sorted.
	Services []string
	// Buckets named by sos/bucket: resources, sorted.
	Buckets []string
	// Products named by partner/product: resources (AccessKeyV2 only), sorted.
	Products []string
	// Bucketless are the granted sos operations that name no bucket
	// (list-buckets), sorted: IAM v3 allows them before the bucket rule.
	Bucketless []string
}

// ReasonWrongVocabulary is a SpecError's reason for an IAM v3 S3 action
// asked of a legacy issuer.
const ReasonWrongVocabulary = "WrongVocabulary"

// Resolve checks a KeySpec against the catalogue as a legacy access key
// (AccessKeyV2) holds it: operations by their legacy names, tags the
// legacy tags. An IAM v3 S3 action name is refused with its legacy
// equivalent. Errors are *SpecError.
func Resolve(spec KeySpec, cat *catalog.Catalog) (Restrictions, error) {
	return resolve(spec, cat, false)
}

// ResolveV3 checks a KeySpec against the catalogue as an IAM v3 role holds
// it: legacy S3 names become their S3 actions, operations are grouped by
// IAM v3 class, a tag names a class (a legacy tag that is no class, such
// as block-storage, grants its operations one by one), and operations no
// role policy gates (get-operation) need no grant. Errors are *SpecError.
func ResolveV3(spec KeySpec, cat *catalog.Catalog) (Restrictions, error) {
	return resolve(spec, cat, true)
}

func resolve(spec KeySpec, cat *catalog.Catalog, v3 bool) (Restrictions, error) {
	r := Restrictions{Unrestricted: spec.Unrestricted, Operations: map[string][]string{}}
	if spec.Unrestricted {
		if len(spec.Operations)+len(spec.Tags)+len(spec.Resources) > 0 {
			return r, &SpecError{Reason: ReasonUnsupported, Message: "an unrestricted key takes no operations, tags or resources"}
		}
		return r, nil
	}
	services := map[string]bool{}
	var operations []catalog.Operation
	for _, tag := range spec.Tags {
		service := catalog.NormalizeTag(tag)
		switch {
		case v3 && cat.HasClass(service):
			services[service] = true
		case v3 && cat.HasTag(service):
			for _, name := range cat.TagOperations(service) {
				operations = append(operations, v3Operations(cat, name)...)
			}
		case !v3 && cat.HasTag(service):
			services[service] = true
		case v3:
			return r, &SpecError{Reason: ReasonUnknownTag, Message: fmt.Sprintf(
				"unknown tag %q: on IAMv3 tags are the service classes %s", tag, strings.Join(cat.Classes(), ", "))}
		default:
			return r, &SpecError{Reason: ReasonUnknownTag, Message: fmt.Sprintf(
				"unknown tag %q: tags are the services %s", tag, strings.Join(cat.Tags(), ", "))}
		}
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
		if !v3 && op.Vocabulary == catalog.V3 {
			message := fmt.Sprintf("%s is an IAM v3 S3 action, which legacy access keys do not know", name)
			if legacy := cat.LegacyName(name); legacy != "" {
				message += fmt.Sprintf(": on an AccessKeyV2 issuer ask for %s", legacy)
			}
			return r, &SpecError{Reason: ReasonWrongVocabulary, Message: message}
		}
		if v3 {
			operations = append(operations, v3Operations(cat, name)...)
		} else {
			operations = append(operations, op)
		}
	}
	for _, op := range operations {
		service := op.Tag
		if v3 {
			service = op.Class
		}
		if service == "" { // not gated by role policies: nothing to grant
			continue
		}
		if !services[service] && !slices.Contains(r.Operations[service], op.Name) {
			r.Operations[service] = append(r.Operations[service], op.Name)
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
	if v3 {
		granted := r.Operations["sos"]
		if slices.Contains(r.Services, "sos") {
			granted = cat.ClassOperations("sos")
		}
		for _, name := range granted {
			if op, _ := cat.Lookup(name); op.Bucketless {
				r.Bucketless = append(r.Bucketless, name)
			}
		}
	}
	return r, nil
}

// v3Operations are the catalogue operations an operation is in IAM v3.
func v3Operations(cat *catalog.Catalog, name string) []catalog.Operation {
	var ops []catalog.Operation
	for _, action := range cat.V3Actions(name) {
		if op, ok := cat.Lookup(action); ok {
			ops = append(ops, op)
		}
	}
	return ops
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

// CompilePolicy turns a KeySpec into an IAM v3 role policy, in the IAM v3
// vocabulary (ResolveV3): default deny; a tag allows its class; operations
// become an `operation in [...]` rule of their class; sos/bucket: resources
// add `parameters.bucket` to the sos rule, after a rule allowing the
// granted sos operations that name no bucket (list-buckets), as Exoscale's
// own bucket example does. An unrestricted spec allows every class.
func CompilePolicy(spec KeySpec, cat *catalog.Catalog) (policy.Policy, error) {
	r, err := ResolveV3(spec, cat)
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
		var rules []policy.PolicyRule
		var conditions []string
		if service == "sos" && len(r.Buckets) > 0 {
			if len(r.Bucketless) > 0 {
				rules = append(rules, policy.PolicyRule{Action: "allow", Expression: "operation in " + celList(r.Bucketless)})
			}
			ops = slices.DeleteFunc(slices.Clone(ops), func(name string) bool { return slices.Contains(r.Bucketless, name) })
			if ops != nil && len(ops) == 0 { // bucketless operations only
				services[service] = policy.ServicePolicy{Type: "rules", Rules: rules}
				return
			}
		}
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
		rules = append(rules, policy.PolicyRule{Action: "allow", Expression: strings.Join(conditions, " && ")})
		services[service] = policy.ServicePolicy{Type: "rules", Rules: rules}
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
	case slices.Contains(r.Services, op.Tag):
		grant = "tag " + op.Tag + " grants the whole service"
	case slices.Contains(r.Operations[op.Tag], op.Name):
		grant = "operation " + op.Name + " is listed"
	default:
		return false, fmt.Sprintf("operation %s is not listed and no tag grants service %s", op.Name, op.Tag)
	}
	if op.Tag != "sos" || len(r.Buckets) == 0 {
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
