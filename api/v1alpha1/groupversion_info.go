// Package v1alpha1 contains the exokey API: AccessKey, KeyIssuer and
// ClusterKeyIssuer in the group iam.exokey.io. It is served, and stored
// at v1beta1: objects written at either version read back at the other
// through the conversion webhook (conversion.go). Write new manifests at
// v1beta1.
//
// +kubebuilder:object:generate=true
// +groupName=iam.exokey.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "iam.exokey.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
