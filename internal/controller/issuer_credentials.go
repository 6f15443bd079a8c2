package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// holdCredentials keeps an issuer's credentials Secret through a teardown.
// A namespace deleted whole takes its AccessKeys, its KeyIssuer and the
// KeyIssuer's Secret at once, and an admin may delete a ClusterKeyIssuer
// and its Secret together: the keys those AccessKeys hold can only be
// revoked with the Secret's credentials. Memory is no place for them (a
// failover would forget them), so the Secret carries CredentialsFinalizer
// while it is in use, and a deleted one stays, still readable, until no
// AccessKey holds a key minted with it. A Secret deleted on its own, to be
// replaced while its issuer lives on, is let go at once: the issuer needs
// the new one.
//
// secret is the Secret's metadata (nil: there is none).
func (r *IssuerReconciler) holdCredentials(ctx context.Context, secret *metav1.PartialObjectMetadata) error {
	if secret == nil {
		return nil
	}
	held := controllerutil.ContainsFinalizer(secret, iamv1beta1.CredentialsFinalizer)
	deleting := !secret.DeletionTimestamp.IsZero()
	switch {
	case !deleting && !held:
		return r.patchFinalizer(ctx, secret, controllerutil.AddFinalizer)
	case deleting && held:
		needed, err := r.credentialsNeeded(ctx, client.ObjectKeyFromObject(secret))
		if err != nil || needed {
			return err
		}
		return r.patchFinalizer(ctx, secret, controllerutil.RemoveFinalizer)
	}
	return nil
}

// credentialsNeeded reports whether a deleted credentials Secret must stay:
// an issuer that uses it is going too (itself deleted, or its namespace
// is), and AccessKeys still hold keys it minted.
func (r *IssuerReconciler) credentialsNeeded(ctx context.Context, key types.NamespacedName) (bool, error) {
	namespace := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: key.Namespace}, namespace); client.IgnoreNotFound(err) != nil {
		return false, err
	}
	namespaceGoing := !namespace.DeletionTimestamp.IsZero()
	users, err := r.issuersUsing(ctx, key)
	if err != nil {
		return false, err
	}
	for _, iss := range users {
		if iss.Object.GetDeletionTimestamp().IsZero() && !namespaceGoing {
			continue // replaced while its issuer lives on
		}
		holders, err := r.holders(ctx, iss)
		if err != nil || len(holders) > 0 {
			return true, err
		}
	}
	return false, nil
}

// issuersUsing lists the issuers whose credentials are the Secret at key:
// the KeyIssuers of its namespace and the ClusterKeyIssuers that name it.
func (r *IssuerReconciler) issuersUsing(ctx context.Context, key types.NamespacedName) ([]*issuer, error) {
	var users []*issuer
	keyIssuers := &iamv1beta1.KeyIssuerList{}
	if err := r.List(ctx, keyIssuers, client.InNamespace(key.Namespace)); err != nil {
		return nil, err
	}
	for i := range keyIssuers.Items {
		if iss := keyIssuer(&keyIssuers.Items[i]); iss.credentialsKey() == key {
			users = append(users, iss)
		}
	}
	clusterIssuers := &iamv1beta1.ClusterKeyIssuerList{}
	if err := r.List(ctx, clusterIssuers); err != nil {
		return nil, err
	}
	for i := range clusterIssuers.Items {
		if iss := clusterKeyIssuer(&clusterIssuers.Items[i]); iss.credentialsKey() == key {
			users = append(users, iss)
		}
	}
	return users, nil
}

// patchFinalizer adds or removes CredentialsFinalizer on the Secret's
// metadata alone, on the version read.
func (r *IssuerReconciler) patchFinalizer(ctx context.Context, secret *metav1.PartialObjectMetadata, edit func(client.Object, string) bool) error {
	base := secret.DeepCopy()
	edit(secret, iamv1beta1.CredentialsFinalizer)
	err := r.Patch(ctx, secret, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("update the finalizers of credentials Secret %s: %w", client.ObjectKeyFromObject(secret), err)
	}
	return nil
}
