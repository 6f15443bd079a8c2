package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

func TestNeedsNewKey(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	created := metav1.NewTime(now.Add(-2 * time.Hour))
	healthy := keyState{
		Now:             now,
		Status:          iamv1beta1.AccessKeyStatus{KeyID: "EXO1", SecretName: "s", RestrictionHash: "h1", CreatedAt: &created, RotateRequest: "r1"},
		RestrictionHash: "h1",
		RotateRequest:   "r1",
		SecretFound:     true, SecretKeyID: "EXO1", SecretChecksumOK: true,
	}
	for _, tc := range []struct {
		name       string
		mutate     func(*keyState)
		wantReason string // empty: no new key
	}{
		{"healthy", func(*keyState) {}, ""},
		{"no key yet", func(s *keyState) { s.Status.KeyID = "" }, RotationNoKey},
		{"restrictions changed", func(s *keyState) { s.RestrictionHash = "h2" }, RotationRestrictionsChanged},
		{"key gone", func(s *keyState) { s.KeyGone = true }, RotationKeyGone},
		{"secret missing", func(s *keyState) { s.SecretFound = false }, RotationSecretMissing},
		{"secret data edited", func(s *keyState) { s.SecretChecksumOK = false }, RotationSecretTampered},
		{"secret holds another key", func(s *keyState) { s.SecretKeyID = "EXO2" }, RotationSecretTampered},
		{"rotation requested", func(s *keyState) { s.RotateRequest = "r2" }, RotationRequested},
		{"rotate annotation removed", func(s *keyState) { s.RotateRequest = "" }, ""},
		{"rotation not yet due", func(s *keyState) { s.RotateEvery = 3 * time.Hour }, ""},
		{"rotation due", func(s *keyState) { s.RotateEvery = time.Hour }, RotationDue},
		{"rotation due exactly now", func(s *keyState) { s.RotateEvery = 2 * time.Hour }, RotationDue},
		{"key gone wins over rotation", func(s *keyState) { s.KeyGone = true; s.RotateEvery = time.Hour }, RotationKeyGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy
			tc.mutate(&s)
			d := needsNewKey(s)
			if d.Needed != (tc.wantReason != "") || d.Reason != tc.wantReason {
				t.Fatalf("got %+v, want reason %q", d, tc.wantReason)
			}
			if d.Needed && d.Message == "" {
				t.Error("a decision must say why")
			}
		})
	}
}

func TestRestrictionHash(t *testing.T) {
	base := &iamv1beta1.AccessKey{Spec: iamv1beta1.AccessKeySpec{
		IssuerRef:  iamv1beta1.IssuerReference{Kind: iamv1beta1.ClusterKeyIssuerKind, Name: "i"},
		Operations: []string{"b", "a"}, Tags: []string{"compute/*"}, Resources: []string{"sos/bucket:x"},
	}}
	same := base.DeepCopy()
	same.Spec.Operations = []string{"a", "b", "a"}
	same.Spec.Tags = []string{"compute"}
	same.Spec.Secret.Format = iamv1beta1.SecretFormatAWS // not a restriction
	if restrictionHash(base) != restrictionHash(same) {
		t.Error("order, duplicates, the /* tag syntax and the Secret format must not change the hash")
	}
	for name, mutate := range map[string]func(*iamv1beta1.AccessKey){
		"operation": func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = append(ak.Spec.Operations, "c") },
		"resource":  func(ak *iamv1beta1.AccessKey) { ak.Spec.Resources = nil },
		"issuer":    func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "j" },
		"key name":  func(ak *iamv1beta1.AccessKey) { ak.Spec.KeyName = "n" },
	} {
		changed := base.DeepCopy()
		mutate(changed)
		if restrictionHash(base) == restrictionHash(changed) {
			t.Errorf("changing the %s must change the hash", name)
		}
	}
}
