package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// refusal is why an AccessKey gets no key: a condition reason and a message
// that says what to change.
type refusal struct {
	Reason  string
	Message string
	// BeyondCeiling: the issuer's ceiling or namespace selection refuses
	// the spec; NamespaceRefused: the namespace selection does.
	BeyondCeiling, NamespaceRefused bool
}

func (r *refusal) Error() string { return r.Message }

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// deferral is a new key that must wait: a Synced reason, and when to look again.
type deferral struct {
	Reason  string
	Message string
	After   time.Duration
}

func (d *deferral) Error() string { return d.Message }

// resolveIssuer finds the AccessKey's issuer and checks that it may serve
// the AccessKey: its endpoint, namespace selection, the ceiling, the
// catalogue and the deletion policy. The issuer is returned with a refusal
// of the ceiling, so a key beyond it can be retired.
func (r *AccessKeyReconciler) resolveIssuer(ctx context.Context, ak *iamv1beta1.AccessKey) (*issuer, error) {
	iss, err := getIssuer(ctx, r.Client, ak.Spec.IssuerRef, ak.Namespace)
	if isNotFound(err) {
		return nil, refuse(ReasonIssuerNotFound, "%s %q not found", kindOf(ak.Spec.IssuerRef), ak.Spec.IssuerRef.Name)
	}
	if err != nil {
		return nil, err
	}
	if !iss.Object.GetDeletionTimestamp().IsZero() {
		return nil, refuse(ReasonIssuerDeleting, "%s %q is being deleted: no new key is minted through it (point spec.issuerRef at another issuer)",
			iss.Kind, iss.Key.Name)
	}
	if err := checkEndpoint(iss.Spec); err != nil {
		return nil, refuse(ReasonIssuerNotReady, "%s %q: %v", iss.Kind, iss.Key.Name, err)
	}
	if iss.Selector != nil && iss.Selector.NamespaceSelector != nil {
		selector, err := metav1.LabelSelectorAsSelector(iss.Selector.NamespaceSelector)
		if err != nil {
			return nil, refuse(ReasonIssuerNotReady, "ClusterKeyIssuer %q has an invalid namespaceSelector: %v", iss.Key.Name, err)
		}
		namespace := &corev1.Namespace{}
		if err := r.Get(ctx, types.NamespacedName{Name: ak.Namespace}, namespace); err != nil {
			return nil, err
		}
		if !selector.Matches(labels.Set(namespace.Labels)) {
			refused := refuse(ReasonNotPermitted, "ClusterKeyIssuer %q does not serve namespace %s: its namespaceSelector is %s",
				iss.Key.Name, ak.Namespace, selector)
			refused.BeyondCeiling, refused.NamespaceRefused = true, true
			return iss, refused
		}
	}
	if err := checkCatalogue(ak, iss, r.Catalog); err != nil {
		return nil, err
	}
	if ttlOf(ak) > 0 {
		if err := checkSessions(ak, iss); err != nil {
			return nil, err
		}
	}
	if err := CheckCeiling(ak.Spec, iss.Spec.Allowed, r.Catalog); err != nil {
		refused := refuse(ReasonNotPermitted, "%s %q does not allow this: %s", iss.Kind, iss.Key.Name, err.Error())
		refused.BeyondCeiling = true
		return iss, refused
	}
	if grantable, known := r.Issuers.grantable(iss); known {
		if err := checkGrantable(ak, iss, grantable, r.Catalog); err != nil {
			return nil, err
		}
	}
	if ak.Spec.DeletionPolicy == iamv1beta1.DeletionPolicyOrphan && !allowsOrphan(iss) {
		return nil, refuse(ReasonNotPermitted, "%s %q does not allow deletionPolicy Orphan (see its allowedDeletionPolicies): use Delete",
			iss.Kind, iss.Key.Name)
	}
	return iss, nil
}

// checkSessions refuses session credentials on an issuer that cannot hand
// them out (a legacy one, or one whose key may not assume roles, as its
// last check found: a refusal here costs no role made and deleted again),
// and a ttl shorter than the issuer allows.
func checkSessions(ak *iamv1beta1.AccessKey, iss *issuer) error {
	if iss.Spec.API == iamv1beta1.IssuerAPIAccessKeyV2 {
		return refuse(ReasonInvalidSpec, "spec.ttlSeconds asks for session credentials, which need IAM v3: %s %q mints legacy access keys (api: AccessKeyV2)",
			iss.Kind, iss.Key.Name)
	}
	if least := limitsOf(iss).minSessionTTL; ttlOf(ak) < least {
		return refuse(ReasonNotPermitted, "spec.ttlSeconds (%s) is shorter than %s %q allows (limits.minSessionTTLSeconds, %s): each renewal costs a call, a Secret write and a restart",
			ttlOf(ak), iss.Kind, iss.Key.Name, least)
	}
	ready := findCondition(iss.Status.Conditions, ConditionReady)
	if ready != nil && ready.Status == metav1.ConditionTrue && iss.Status.SessionCredentials != iamv1beta1.Available {
		return refuse(ReasonNotPermitted, "%s %q cannot hand out session credentials: its key lacks %s (give it that operation, or remove spec.ttlSeconds)",
			iss.Kind, iss.Key.Name, assumeOperation)
	}
	return nil
}

// allowsOrphan reports whether an issuer lets AccessKeys keep their key
// after deletion. Orphan must be allowed explicitly.
func allowsOrphan(iss *issuer) bool {
	return slices.Contains(iss.Spec.AllowedDeletionPolicies, iamv1beta1.DeletionPolicyOrphan)
}

// checkEndpoint refuses an endpoint over plain http beyond loopback, where
// signed requests and minted secrets would travel unencrypted, unless the
// issuer accepts that risk.
func checkEndpoint(spec iamv1beta1.IssuerSpec) error {
	if spec.InsecureEndpoint == iamv1beta1.PermissionAllow {
		return nil
	}
	for field, endpoint := range map[string]string{"endpoint": spec.Endpoint, "sosEndpoint": spec.SOSEndpoint} {
		if endpoint == "" {
			continue
		}
		u, err := url.Parse(endpoint)
		if err != nil {
			return fmt.Errorf("%s %q is not a URL: %v", field, endpoint, err)
		}
		if u.Scheme == "https" {
			continue
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			continue
		}
		return fmt.Errorf("%s %s is plain http beyond loopback: use https, or set insecureEndpoint: Allow to accept the risk", field, endpoint)
	}
	return nil
}

func kindOf(ref iamv1beta1.IssuerReference) iamv1beta1.IssuerKind {
	if ref.Kind == "" {
		return iamv1beta1.ClusterKeyIssuerKind
	}
	return ref.Kind
}

// checkCatalogue refuses operations, tags and resources that Exoscale does
// not know or the issuer's API cannot express.
func checkCatalogue(ak *iamv1beta1.AccessKey, iss *issuer, cat *catalog.Catalog) error {
	err := CheckRestrictions(ak, iss.Spec.API, cat)
	var specErr *exoscale.SpecError
	if errors.As(err, &specErr) {
		reason := ReasonInvalidSpec
		if specErr.Reason == exoscale.ReasonUnknownOperation {
			reason = ReasonUnknownOperation
		}
		return refuse(reason, "%s", specErr.Message)
	}
	return err
}

// CheckRestrictions checks an AccessKey's operations, tags and resources
// against the catalogue, as an issuer of api would compile them. Errors
// are *exoscale.SpecError.
func CheckRestrictions(ak *iamv1beta1.AccessKey, api iamv1beta1.IssuerAPI, cat *catalog.Catalog) error {
	spec := KeySpecOf(ak, "")
	if api == iamv1beta1.IssuerAPIAccessKeyV2 {
		_, err := exoscale.Resolve(spec, cat)
		return err
	}
	_, err := exoscale.CompilePolicy(spec, cat)
	return err
}

// iamService is the class of IAM administration: creating keys and roles,
// assuming roles. A key holding it can mint itself anything its parent may.
const iamService = "iam"

// Ceiling expands an issuer's allowed patterns over the catalogue: what its
// status shows. IAM operations count only when named explicitly.
func Ceiling(allowed iamv1beta1.Allowed, cat *catalog.Catalog) iamv1beta1.Ceiling {
	var out iamv1beta1.Ceiling
	var operations int32
	for _, op := range cat.Operations() {
		// Resources narrow where an operation applies, not whether it may
		// be granted: they are left out of the count.
		spec := iamv1beta1.AccessKeySpec{Operations: []string{op.Name}}
		if CheckCeiling(spec, iamv1beta1.Allowed{Operations: allowed.Operations, Tags: allowed.Tags}, cat) == nil {
			operations++
			if op.Class == iamService {
				out.IAMOperations = append(out.IAMOperations, op.Name)
			}
		}
	}
	out.Operations = &operations
	services := append(cat.Tags(), cat.Classes()...)
	slices.Sort(services)
	for _, service := range slices.Compact(services) {
		if CheckCeiling(iamv1beta1.AccessKeySpec{Tags: []string{service}}, iamv1beta1.Allowed{Tags: allowed.Tags}, cat) == nil {
			out.Services = append(out.Services, service)
		}
	}
	return out
}

// CheckCeiling checks a spec against an issuer's allowed ceiling. Empty
// allows nothing. Either may be written in either vocabulary and means the
// same rights: both are read as IAM v3 actions (get-sos-object is
// get-object and head-object), and a spec's operation is allowed when each
// of its actions is matched by an operation pattern (itself or through its
// legacy name) or by a tag pattern matching its legacy tag or its class.
// With resource patterns, a grant that reaches sos must name buckets, each
// matching a pattern.
func CheckCeiling(spec iamv1beta1.AccessKeySpec, allowed iamv1beta1.Allowed, cat *catalog.Catalog) error {
	matchesAny := func(patterns []string, value string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return catalog.Glob(p, value) })
	}
	if spec.Access == iamv1beta1.AccessUnrestricted {
		if allowed.Unrestricted != iamv1beta1.PermissionAllow {
			return errors.New("unrestricted keys are not allowed (allowed.unrestricted is not Allow)")
		}
		return nil
	}
	var beyond []string
	reachesSOS := false
	for _, name := range spec.Operations {
		var missing []string
		for _, action := range cat.V3Actions(name) {
			op, known := cat.Lookup(action)
			if !known {
				continue // the catalogue check refuses it
			}
			if op.Class == "sos" || op.Tag == "sos" {
				reachesSOS = true
			}
			namedAs := []string{action, name, cat.LegacyName(action)}
			if op.Class == iamService {
				if !slices.ContainsFunc(namedAs, func(n string) bool { return n != "" && slices.Contains(allowed.Operations, n) }) &&
					!slices.Contains(allowed.Tags, iamService) {
					beyond = append(beyond, "IAM operation "+name+" (IAM operations must be named explicitly in allowed.operations; wildcards do not reach them)")
				}
				continue
			}
			if !slices.ContainsFunc(namedAs, func(n string) bool { return n != "" && matchesAny(allowed.Operations, n) }) &&
				!matchesAny(allowed.Tags, op.Class) && !matchesAny(allowed.Tags, op.Tag) {
				missing = append(missing, action)
			}
		}
		switch {
		case len(missing) == 0:
		case missing[0] == name:
			beyond = append(beyond, "operation "+name)
		default:
			beyond = append(beyond, fmt.Sprintf("operation %s (as IAM v3 actions: %s beyond)", name, strings.Join(missing, ", ")))
		}
	}
	for _, tag := range spec.Tags {
		service := catalog.NormalizeTag(tag)
		if service == "sos" {
			reachesSOS = true
		}
		if service == iamService {
			if !slices.Contains(allowed.Tags, iamService) {
				beyond = append(beyond, "tag iam (the iam service must be named explicitly in allowed.tags; wildcards do not reach it)")
			}
			continue
		}
		if !matchesAny(allowed.Tags, service) {
			beyond = append(beyond, "tag "+service)
		}
	}
	for _, res := range spec.Resources {
		if !matchesAny(allowed.Resources, res) {
			beyond = append(beyond, "resource "+res)
		}
	}
	if len(allowed.Resources) > 0 && reachesSOS && !slices.ContainsFunc(spec.Resources, func(r string) bool {
		return strings.HasPrefix(r, "sos/bucket:")
	}) {
		beyond = append(beyond, fmt.Sprintf("sos on every bucket (name buckets matching %s)", strings.Join(allowed.Resources, ", ")))
	}
	if len(beyond) > 0 {
		return errors.New(strings.Join(beyond, ", "))
	}
	return nil
}

// checkGrantable refuses what the issuer's own key was last seen not to
// hold: on IAMv3 what its role or the organisation policy denies. Nothing
// is refused before the issuer's first check.
func checkGrantable(ak *iamv1beta1.AccessKey, iss *issuer, grantable exoscale.Grantable, cat *catalog.Catalog) error {
	if ak.Spec.Access == iamv1beta1.AccessUnrestricted {
		return nil
	}
	v3 := iss.Spec.API != iamv1beta1.IssuerAPIAccessKeyV2
	var lacking []string
	for _, name := range ak.Spec.Operations {
		names := []string{name}
		if v3 {
			names = cat.V3Actions(name)
		}
		for _, n := range names {
			if op, ok := cat.Lookup(n); ok && (op.Gated() || !v3) && !grantable.Holds(n) {
				lacking = append(lacking, n+dependsNote(grantable, n))
			}
		}
	}
	for _, tag := range ak.Spec.Tags {
		service := catalog.NormalizeTag(tag)
		names := cat.TagOperations(service)
		if v3 && cat.HasClass(service) {
			names = cat.ClassOperations(service)
		}
		for _, n := range names {
			if op, ok := cat.Lookup(n); ok && op.Gated() && !grantable.Holds(n) {
				lacking = append(lacking, "tag "+service+" ("+n+dependsNote(grantable, n)+" and perhaps more)")
				break
			}
		}
	}
	if len(lacking) == 0 {
		return nil
	}
	slices.Sort(lacking)
	lacking = slices.Compact(lacking)
	message := fmt.Sprintf("%s %q's key may not grant %s", iss.Kind, iss.Key.Name, strings.Join(lacking, ", "))
	if v3 {
		message += ": its role or the organisation policy denies it"
	}
	return refuse(ReasonIssuerCannotGrant, "%s", message)
}

func dependsNote(grantable exoscale.Grantable, operation string) string {
	if facts := grantable.Depends[operation]; len(facts) > 0 {
		return " (its grant depends on " + strings.Join(facts, ", ") + ")"
	}
	return ""
}

// takeFirstMint spends a mint of the namespace's share of its issuer's rate
// for an AccessKey that holds no key yet, or says how long to wait for one;
// 0 too when its issuer cannot be resolved (the pass reports that). Keys
// that replace one are admitted when the replacement is decided.
func (r *AccessKeyReconciler) takeFirstMint(ctx context.Context, ak *iamv1beta1.AccessKey) time.Duration {
	if holdsKeys(ak) {
		return 0
	}
	iss, err := r.resolveIssuer(ctx, ak)
	if err != nil {
		return 0
	}
	return r.Issuers.admit(iss, ak.Namespace, r.Clock.Now())
}
