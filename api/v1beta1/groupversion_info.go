// Package v1beta1 contains the exokey API: AccessKey, KeyIssuer and
// ClusterKeyIssuer in the group iam.exokey.io. It is the version stored;
// v1alpha1 is served and converted to and from it without loss.
//
// Changes from v1alpha1, each following Kubernetes' API conventions
// (kube-api-linter):
//   - Durations are whole seconds: rotation.everySeconds, gracePeriodSeconds,
//     minGracePeriodSeconds, renewBeforeSeconds; ttlSeconds; the issuer's
//     limits.maxGracePeriodSeconds, minRotationPeriodSeconds,
//     minSessionTTLSeconds, beyondCeilingGraceSeconds. A v1alpha1 duration
//     with a fraction of a second is rounded up, and reads back at v1alpha1
//     as written.
//   - Booleans are enums: unrestricted: true is access: Unrestricted (or
//     Restricted, the default); an issuer's allowed.unrestricted and
//     allowInsecureEndpoint are allowed.unrestricted and insecureEndpoint,
//     Allow or Deny (the default); the issuer's status.canAssumeRoles is
//     status.sessionCredentials, Available or Unavailable.
//   - status.retiring is a map keyed by keyID, of at most 16 keys;
//     status.observedGeneration, grantable and ceiling.operations are
//     unset rather than 0 until a controller has served the object.
//   - Fields that must be set are marked required; optional strings are at
//     least one character; lists say how server-side apply merges them.
//
// +kubebuilder:object:generate=true
// +groupName=iam.exokey.io
package v1beta1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "iam.exokey.io", Version: "v1beta1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
