package controller

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/secret"
)

func TestSecretCacheTransformKeepsNoData(t *testing.T) {
	data := map[string][]byte{"EXOSCALE_API_SECRET": []byte("s3cr3t"), "junk": []byte(strings.Repeat("x", 1<<20))}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns",
			Labels: map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue, "tenant": "label"},
			Annotations: map[string]string{iamv1beta1.ChecksumAnnotation: secret.Checksum(data), "tenant": strings.Repeat("y", 100<<10),
				"iam.exokey.io/tenant": strings.Repeat("z", 100<<10)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Data: data,
	}
	out, err := SecretCacheTransform(s)
	if err != nil {
		t.Fatal(err)
	}
	cached := out.(*corev1.Secret)
	if len(cached.Data) != 1 || cached.Data[observedDataKey] == nil || cached.ManagedFields != nil || cached.Labels["tenant"] != "" ||
		len(cached.Annotations) != 1 || cached.Annotations[iamv1beta1.ChecksumAnnotation] == "" {
		t.Fatalf("the cached copy keeps more than exokey reads: %+v", cached.ObjectMeta)
	}
	if cached.Labels[iamv1beta1.ManagedByLabel] != iamv1beta1.ManagedByValue || len(cached.Labels) != 1 {
		t.Fatalf("the cached copy lost exokey's label: %v", cached.Labels)
	}
	if !checksumOK(cached) {
		t.Fatal("the cached copy's checksum does not match the data it dropped")
	}
	// A Secret labelled with another value is not exokey's, whatever path
	// brought it here: its cached copy does not claim exokey's label.
	relabelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns",
		Labels: map[string]string{iamv1beta1.ManagedByLabel: "someone-else"}}}
	if out, err := SecretCacheTransform(relabelled); err != nil || len(out.(*corev1.Secret).Labels) != 0 {
		t.Fatalf("a Secret managed by someone else was cached with labels %v (%v)", out.(*corev1.Secret).Labels, err)
	}
	// client-go passes a streamed list through the transform twice.
	again, err := SecretCacheTransform(cached.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if !checksumOK(again.(*corev1.Secret)) {
		t.Fatal("a second pass through the transform lost the checksum")
	}
	// A Secret whose data is not what exokey published is cached as
	// changed, and stays so through a second pass.
	edited := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns",
		Annotations: map[string]string{iamv1beta1.ChecksumAnnotation: secret.Checksum(data)}},
		Data: map[string][]byte{"EXOSCALE_API_SECRET": []byte("edited")}}
	out, err = SecretCacheTransform(edited)
	if err != nil {
		t.Fatal(err)
	}
	if checksumOK(out.(*corev1.Secret)) {
		t.Fatal("a Secret with edited data was cached as intact")
	}
	if again, err := SecretCacheTransform(out.(*corev1.Secret).DeepCopy()); err != nil || checksumOK(again.(*corev1.Secret)) {
		t.Fatalf("a second pass through the transform found an edited Secret intact (%v)", err)
	}
}

func TestASecretReadFreshIsJudgedByItsData(t *testing.T) {
	// A tenant empties its Secret's data and forges, as an annotation, the
	// verdict the cache transform records: read from the API server, the
	// Secret is tampered. (The transform's own record is a data key the API
	// server refuses; the tenancy suite checks that.)
	forged := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Annotations: map[string]string{
		iamv1beta1.ChecksumAnnotation: "abc", observedDataKey: "intact"}}}
	r := &AccessKeyReconciler{APIReader: fake.NewClientBuilder().WithObjects(forged).Build()}
	got, err := r.readSecret(context.Background(), keyOf("ns", "s"))
	if err != nil || got == nil {
		t.Fatalf("readSecret: %v, %v", got, err)
	}
	if checksumOK(got) {
		t.Fatal("a forged observed-data annotation was believed")
	}
}
