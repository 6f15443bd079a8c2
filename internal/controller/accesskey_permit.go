package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// refusal is why an AccessKey gets no key: a condition reason and a message
// that says what to change.
type refusal struct {
	Reason  string
	Message string
}

func (r *refusal) Error() string { return r.Message }

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// resolveIssuer finds the AccessKey's issuer and checks that it may serve
// the AccessKey: namespace selection, the ceiling and the catalogue.
func (r *AccessKeyReconciler) resolveIssuer(ctx context.Context, ak *iamv1alpha1.AccessKey) (*issuer, error) {
	iss, err := getIssuer(ctx, r.Client, ak.Spec.IssuerRef, ak.Namespace)
	if isNotFound(err) {
		return nil, refuse(ReasonIssuerNotFound, "%s %q not found", kindOf(ak.Spec.IssuerRef), ak.Spec.IssuerRef.Name)
	}
	if err != nil {
		return nil, err
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
			return nil, refuse(ReasonNotPermitted, "ClusterKeyIssuer %q does not serve namespace %s: its namespaceSelector is %s",
				iss.Key.Name, ak.Namespace, selector)
		}
	}
	if err := checkCatalogue(ak, iss, r.Catalog); err != nil {
		return nil, err
	}
	if err := checkCeiling(ak.Spec, iss.Spec.Allowed, r.Catalog); err != nil {
		return nil, refuse(ReasonNotPermitted, "%s %q does not allow this: %s", iss.Kind, iss.Key.Name, err.Error())
	}
	return iss, nil
}

func kindOf(ref iamv1alpha1.IssuerReference) iamv1alpha1.IssuerKind {
	if ref.Kind == "" {
		return iamv1alpha1.ClusterKeyIssuerKind
	}
	return ref.Kind
}

// checkCatalogue refuses operations, tags and resources that Exoscale does
// not know or the issuer's API cannot express.
func checkCatalogue(ak *iamv1alpha1.AccessKey, iss *issuer, cat *catalog.Catalog) error {
	spec := keySpec(ak, "")
	var err error
	if iss.Spec.API == iamv1alpha1.IssuerAPIAccessKeyV2 {
		_, err = exoscale.Resolve(spec, cat)
	} else {
		_, err = exoscale.CompilePolicy(spec, cat)
	}
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

// checkCeiling checks a spec against an issuer's allowed ceiling. Empty
// allows nothing. An operation is allowed by an operation pattern or by a
// tag pattern matching its service; with resource patterns, a grant that
// reaches sos must name buckets, each matching a pattern.
func checkCeiling(spec iamv1alpha1.AccessKeySpec, allowed iamv1alpha1.Allowed, cat *catalog.Catalog) error {
	matchesAny := func(patterns []string, value string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return catalog.Glob(p, value) })
	}
	if spec.Unrestricted {
		if !allowed.Unrestricted {
			return errors.New("unrestricted keys are not allowed (allowed.unrestricted is false)")
		}
		return nil
	}
	var beyond []string
	reachesSOS := false
	for _, name := range spec.Operations {
		op, _ := cat.Lookup(name)
		if op.Service == "sos" {
			reachesSOS = true
		}
		if !matchesAny(allowed.Operations, name) && !matchesAny(allowed.Tags, op.Service) {
			beyond = append(beyond, "operation "+name)
		}
	}
	for _, tag := range spec.Tags {
		service := catalog.NormalizeTag(tag)
		if service == "sos" {
			reachesSOS = true
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
