package controller

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/secret"
)

func TestSecretCacheTransformKeepsNoData(t *testing.T) {
	data := map[string][]byte{"EXOSCALE_API_SECRET": []byte("s3cr3t"), "junk": []byte(strings.Repeat("x", 1<<20))}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns",
			Labels:        map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue, "tenant": "label"},
			Annotations:   map[string]string{iamv1alpha1.ChecksumAnnotation: secret.Checksum(data), "tenant": strings.Repeat("y", 200<<10)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Data: data,
	}
	out, err := SecretCacheTransform(s)
	if err != nil {
		t.Fatal(err)
	}
	cached := out.(*corev1.Secret)
	if cached.Data != nil || cached.ManagedFields != nil || cached.Labels["tenant"] != "" || cached.Annotations["tenant"] != "" {
		t.Fatalf("the cached copy keeps more than exokey reads: %+v", cached.ObjectMeta)
	}
	if !checksumOK(cached) {
		t.Fatal("the cached copy's checksum does not match the data it dropped")
	}
}

func TestASecretReadFreshIsJudgedByItsData(t *testing.T) {
	// A tenant empties its Secret's data and forges the annotation the cache
	// transform writes: read from the API server, the Secret is tampered.
	forged := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Annotations: map[string]string{
		iamv1alpha1.ChecksumAnnotation: "abc", ObservedChecksumAnnotation: "abc"}}}
	r := &AccessKeyReconciler{APIReader: fake.NewClientBuilder().WithObjects(forged).Build()}
	got, err := r.readSecret(context.Background(), keyOf("ns", "s"))
	if err != nil || got == nil {
		t.Fatalf("readSecret: %v, %v", got, err)
	}
	if checksumOK(got) {
		t.Fatal("a forged observed-checksum annotation was believed")
	}
}
