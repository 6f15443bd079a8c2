package controller

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/secret"
)

// BenchmarkSecretCache reports what the manager's cache keeps of 10,000
// Secrets as exokey publishes them, against the same Secrets decoded
// whole: the heap they hold once collected, per Secret.
func BenchmarkSecretCache(b *testing.B) {
	const n = 10_000
	encoded := make([][]byte, n)
	for i := range n {
		data := map[string][]byte{
			"EXOSCALE_API_KEY":    fmt.Appendf(nil, "EXO%024x", i),
			"EXOSCALE_API_SECRET": []byte(uuid.NewString() + uuid.NewString()),
		}
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: fmt.Sprintf("team-%03d", i%100), Name: fmt.Sprintf("backup-%05d", i), UID: types.UID(uuid.NewString()),
				ResourceVersion: fmt.Sprint(100_000 + i), CreationTimestamp: metav1.Now(),
				Labels: map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue},
				Annotations: map[string]string{
					iamv1beta1.KeyIDAnnotation: string(data["EXOSCALE_API_KEY"]), iamv1beta1.KeyNameAnnotation: fmt.Sprintf("k8s-team-backup-%05d", i),
					iamv1beta1.ChecksumAnnotation: secret.Checksum(data), RoleIDAnnotation: uuid.NewString(),
				},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: iamv1beta1.GroupVersion.String(), Kind: "AccessKey",
					Name: fmt.Sprintf("backup-%05d", i), UID: types.UID(uuid.NewString()), Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}},
			},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		var err error
		if encoded[i], err = json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
	decode := func(transform bool) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		kept := make([]any, n)
		for i, raw := range encoded {
			s := &corev1.Secret{}
			if err := json.Unmarshal(raw, s); err != nil {
				b.Fatal(err)
			}
			kept[i] = s
			if transform {
				out, err := SecretCacheTransform(s)
				if err != nil {
					b.Fatal(err)
				}
				if !checksumOK(out.(*corev1.Secret)) {
					b.Fatalf("Secret %d was cached as changed", i)
				}
				kept[i] = out
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(kept)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	var whole, cached float64
	for b.Loop() {
		whole, cached = decode(false), decode(true)
	}
	b.ReportMetric(whole, "B/decoded-secret")
	b.ReportMetric(cached, "B/cached-secret")
	b.ReportMetric(cached/whole, "cached/decoded")
}
