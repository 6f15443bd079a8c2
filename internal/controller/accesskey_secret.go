package controller

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/secret"
)

// RoleIDAnnotation records an IAMv3 key's role on its Secret, so a key
// adopted after a crash can still be revoked with its role.
const RoleIDAnnotation = "iam.exokey.io/role-id"

func secretName(ak *iamv1alpha1.AccessKey) string {
	if ak.Spec.Secret.Name != "" {
		return ak.Spec.Secret.Name
	}
	return ak.Name
}

// getSecret returns the AccessKey's Secret, or nil when there is none. The
// cache holds exokey's Secrets only; a miss is confirmed with the API
// reader so that a Secret someone else owns is seen.
func (r *AccessKeyReconciler) getSecret(ctx context.Context, ak *iamv1alpha1.AccessKey) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: ak.Namespace, Name: secretName(ak)}
	s := &corev1.Secret{}
	err := r.Get(ctx, key, s)
	if isNotFound(err) {
		err = r.APIReader.Get(ctx, key, s)
	}
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Secret %s: %w", key, err)
	}
	return s, nil
}

// conflictsWith reports whether an existing Secret belongs to someone else.
func conflictsWith(s *corev1.Secret, ak *iamv1alpha1.AccessKey) bool {
	if s == nil {
		return false
	}
	owner := metav1.GetControllerOf(s)
	return owner == nil || owner.UID != ak.UID
}

// secretValues are the inputs of a Secret's rendering.
func secretValues(ak *iamv1alpha1.AccessKey, iss *issuer) secret.Values {
	return secret.Values{
		Zone: iss.Spec.Zone, APIEndpoint: iss.Spec.Endpoint,
		Name: ak.Name, Namespace: ak.Namespace, Labels: ak.Labels, Annotations: userAnnotations(ak),
	}
}

// userAnnotations are the AccessKey's annotations without exokey's own
// bookkeeping, which templates have no use for.
func userAnnotations(ak *iamv1alpha1.AccessKey) map[string]string {
	if _, ok := ak.Annotations[iamv1alpha1.PendingKeyAnnotation]; !ok {
		return ak.Annotations
	}
	out := maps.Clone(ak.Annotations)
	delete(out, iamv1alpha1.PendingKeyAnnotation)
	return out
}

// publish writes a credential into the AccessKey's Secret: the durable home
// of the key's secret. existing is the Secret as this pass read it (nil when
// there was none): a create then fails if one appeared since, an update if
// it changed, so nothing is overwritten unseen. It refuses a Secret
// controlled by anything else and returns the data's checksum.
func (r *AccessKeyReconciler) publish(ctx context.Context, ak *iamv1alpha1.AccessKey, iss *issuer, cred exoscale.Credential,
	existing *corev1.Secret) (string, error) {
	values := secretValues(ak, iss)
	values.KeyID, values.Secret, values.KeyName = cred.ID, cred.Secret.Reveal(), cred.Name
	rendered, err := secret.Render(ak.Spec.Secret, values)
	if err != nil {
		return "", refuse(ReasonInvalidSpec, "%v", err)
	}
	if conflictsWith(existing, ak) {
		return "", refuse(ReasonSecretConflict, "Secret %s exists and is not controlled by this AccessKey", secretName(ak))
	}
	s := existing.DeepCopy()
	if s == nil {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName(ak), Namespace: ak.Namespace}, Type: corev1.SecretTypeOpaque}
	}
	checksum := secret.Checksum(rendered.Data)
	s.Data = rendered.Data
	s.Labels = mergeMaps(s.Labels, rendered.Labels, map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue})
	s.Annotations = mergeMaps(s.Annotations, rendered.Annotations, map[string]string{
		iamv1alpha1.KeyIDAnnotation:    cred.ID,
		iamv1alpha1.KeyNameAnnotation:  cred.Name,
		iamv1alpha1.ChecksumAnnotation: checksum,
	})
	if cred.RoleID != "" {
		s.Annotations[RoleIDAnnotation] = cred.RoleID
	} else {
		delete(s.Annotations, RoleIDAnnotation)
	}
	if err := controllerutil.SetControllerReference(ak, s, r.Scheme()); err != nil {
		return "", err
	}
	if existing == nil {
		err = r.Create(ctx, s)
	} else {
		err = r.Update(ctx, s)
	}
	if err != nil {
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
