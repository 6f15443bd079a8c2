package controller

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

func TestUnsettledPending(t *testing.T) {
	withRecord := func(record string) *iamv1alpha1.AccessKey {
		ak := &iamv1alpha1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}},
			Status:     iamv1alpha1.AccessKeyStatus{KeyName: "k-current", Retiring: []iamv1alpha1.RetiringKey{{KeyID: "EXO0", KeyName: "k-old"}}},
		}
		if record != "" {
			ak.Annotations[iamv1alpha1.PendingKeyAnnotation] = record
		}
		return ak
	}
	for _, tc := range []struct {
		name, record string
		wantName     string // empty: nothing to recover
		wantRefusal  bool
	}{
		{name: "no record"},
		{name: "record of the current key", record: `{"keyName":"k-current"}`},
		{name: "record of a retiring key", record: `{"keyName":"k-old"}`},
		{name: "create interrupted", record: `{"keyName":"k-new","startedAt":"2026-11-22T12:00:00Z"}`, wantName: "k-new"},
		{name: "not JSON", record: `k-new`, wantRefusal: true},
		{name: "no name", record: `{}`, wantRefusal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := unsettledPending(withRecord(tc.record))
			var refused *refusal
			if got := errors.As(err, &refused); got != tc.wantRefusal {
				t.Fatalf("refusal = %v (%v), want %v", got, err, tc.wantRefusal)
			}
			gotName := ""
			if p != nil {
				gotName = p.KeyName
			}
			if gotName != tc.wantName {
				t.Fatalf("pending key = %q, want %q", gotName, tc.wantName)
			}
		})
	}
}
