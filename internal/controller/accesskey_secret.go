package controller

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/secret"
)

// RoleIDAnnotation records an IAMv3 key's role on its Secret, so a key
// adopted after a crash can still be revoked with its role.
const RoleIDAnnotation = "iam.exokey.io/role-id"

func secretName(ak *iamv1beta1.AccessKey) string {
	if ak.Spec.Secret.Name != "" {
		return ak.Spec.Secret.Name
	}
	return ak.Name
}

// getSecret returns the AccessKey's Secret, or nil when there is none. The
// cache holds exokey's Secrets only; a miss is confirmed with the API
// reader so that a Secret someone else owns is seen.
func (r *AccessKeyReconciler) getSecret(ctx context.Context, ak *iamv1beta1.AccessKey) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: ak.Namespace, Name: secretName(ak)}
	s := &corev1.Secret{}
	err := r.Get(ctx, key, s)
	if isNotFound(err) {
		return r.readSecret(ctx, key)
	}
	if err != nil {
		return nil, fmt.Errorf("read Secret %s: %w", key, err)
	}
	return s, nil
}

// readSecret reads a Secret from the API server, nil when there is none.
func (r *AccessKeyReconciler) readSecret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, key, s)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Secret %s: %w", key, err)
	}
	return s, nil
}

// conflictsWith reports whether an existing Secret belongs to someone else.
func conflictsWith(s *corev1.Secret, ak *iamv1beta1.AccessKey) bool {
	if s == nil {
		return false
	}
	owner := metav1.GetControllerOf(s)
	return owner == nil || owner.UID != ak.UID
}

// secretValues are the inputs of a Secret's rendering.
func secretValues(ak *iamv1beta1.AccessKey, iss *issuer) secret.Values {
	return secret.Values{
		Zone: iss.Spec.Zone, APIEndpoint: iss.Spec.Endpoint, SOS: iss.Spec.SOSEndpoint,
		Name: ak.Name, Namespace: ak.Namespace, Labels: ak.Labels, Annotations: ak.Annotations,
	}
}

// observedDataKey holds, in the cached copy of a Secret, whether the data
// the cache dropped matched the Secret's checksum annotation. It is no valid
// data key (the API server refuses the slash), so no Secret read from the
// API server carries it and no tenant can forge it.
const observedDataKey = "iam.exokey.io/observed-data"

// intactData and changedData are the data of every cached Secret: one
// verdict is all exokey reads of the data it dropped, so the cached copies
// share two read-only maps instead of holding a map and a checksum each.
var (
	intactData  = map[string][]byte{observedDataKey: []byte("intact")}
	changedData = map[string][]byte{observedDataKey: []byte("changed")}
)

// SecretCache is how the manager caches Secrets: only those labelled as
// exokey's, so its memory does not grow with the cluster's other Secrets,
// and none with its data (SecretCacheTransform).
func SecretCache() cache.ByObject {
	return cache.ByObject{
		Label:     labels.SelectorFromSet(managedByLabels),
		Transform: SecretCacheTransform,
	}
}

// SecretCacheTransform keeps in the manager's cache only what exokey reads
// of a Secret: exokey's label and the annotations it writes, the owner
// references, and whether the data is what exokey published instead of the
// data. The label that selects
// Secrets for the cache is tenant-writable, so without this a tenant could
// grow the manager with labelled Secrets full of junk. client-go may pass
// an object through it twice (a list streamed into the informer is), so it
// is idempotent: a copy it already made is kept as it is.
func SecretCacheTransform(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	annotations := make(map[string]string, len(secretAnnotations))
	for _, name := range secretAnnotations {
		if value, ok := s.Annotations[name]; ok {
			annotations[name] = value
		}
	}
	// The cache selects Secrets by exokey's label, so every cached copy
	// carries it: they share one map, about a fifth of what a cached Secret
	// costs. Nothing writes it: cached objects are read-only, and what the
	// client hands out is a deep copy.
	labels := managedByLabels
	if s.Labels[iamv1beta1.ManagedByLabel] != iamv1beta1.ManagedByValue {
		labels = map[string]string{}
	}
	data := changedData
	if checksumOK(s) {
		data = intactData
	}
	s.Annotations, s.Labels, s.StringData, s.ManagedFields = annotations, labels, nil, nil
	s.Data = data
	return s, nil
}

// secretAnnotations are the annotations exokey writes on a Secret, the only
// ones its cached copy keeps.
var secretAnnotations = []string{
	iamv1beta1.KeyIDAnnotation, iamv1beta1.KeyNameAnnotation, iamv1beta1.ChecksumAnnotation, RoleIDAnnotation,
}

// managedByLabels are the labels of every cached Secret exokey manages.
var managedByLabels = map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue}

// checksumOK says whether a Secret's data is what its checksum annotation
// says exokey published: judged by the cache transform for a cached copy,
// computed for a copy read from the API server.
func checksumOK(s *corev1.Secret) bool {
	if verdict, ok := s.Data[observedDataKey]; ok && len(s.Data) == 1 {
		return string(verdict) == string(intactData[observedDataKey])
	}
	return s.Annotations[iamv1beta1.ChecksumAnnotation] == secret.Checksum(s.Data)
}

// publish writes a credential into the AccessKey's Secret: the durable home
// of the key's secret. existing is the Secret as this pass read it (nil when
// there was none): a create then fails if one appeared since. An existing
// Secret is read again from the API server (the cache holds no data) and
// updated with that resourceVersion, so nothing is overwritten unseen. It
// refuses a Secret controlled by anything else and returns the data's
// checksum. No error it returns carries the secret.
func (r *AccessKeyReconciler) publish(ctx context.Context, ak *iamv1beta1.AccessKey, iss *issuer, cred exoscale.Credential,
	existing *corev1.Secret) (string, error) {
	values := secretValues(ak, iss)
	values.KeyID, values.Secret, values.KeyName = cred.ID, cred.Secret.Reveal(), cred.Name
	rendered, err := secret.Render(ak.Spec.Secret, values)
	if err != nil {
		return "", refuse(ReasonInvalidSpec, "%v", err)
	}
	var s *corev1.Secret
	if existing != nil {
		if s, err = r.readSecret(ctx, client.ObjectKeyFromObject(existing)); err != nil {
			return "", err
		}
		if s == nil {
			return "", fmt.Errorf("write Secret %s: it was deleted since this pass read it", secretName(ak))
		}
	}
	if conflictsWith(s, ak) {
		return "", refuse(ReasonSecretConflict, "Secret %s exists and is not controlled by this AccessKey", secretName(ak))
	}
	if s == nil {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName(ak), Namespace: ak.Namespace}, Type: corev1.SecretTypeOpaque}
	}
	checksum := secret.Checksum(rendered.Data)
	s.Data = rendered.Data
	s.Labels = mergeMaps(s.Labels, rendered.Labels, map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue})
	s.Annotations = mergeMaps(s.Annotations, rendered.Annotations, map[string]string{
		iamv1beta1.KeyIDAnnotation:    cred.ID,
		iamv1beta1.KeyNameAnnotation:  cred.Name,
		iamv1beta1.ChecksumAnnotation: checksum,
	})
	if cred.RoleID != "" {
		s.Annotations[RoleIDAnnotation] = cred.RoleID
	} else {
		delete(s.Annotations, RoleIDAnnotation)
	}
	if err := controllerutil.SetControllerReference(ak, s, r.Scheme()); err != nil {
		return "", err
	}
	if s.ResourceVersion == "" {
		err = r.Create(ctx, s)
	} else {
		err = r.Update(ctx, s)
	}
	if err != nil {
		// The API server's answer may quote what it refused.
		rejected := apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsBadRequest(err)
		err = secret.Scrub(err, cred.Secret.Reveal())
		if rejected {
			return "", refuse(ReasonSecretRejected, "the API server refused Secret %s: %v", secretName(ak), err)
		}
		return "", fmt.Errorf("write Secret %s: %w", secretName(ak), err)
	}
	return checksum, nil
}

func mergeMaps(maps_ ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps_ {
		maps.Copy(out, m)
	}
	return out
}
