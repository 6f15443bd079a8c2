package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
)

func TestMintedForKeepsOnlyThisAccessKeysKeys(t *testing.T) {
	ak := &iamv1alpha1.AccessKey{ObjectMeta: metav1.ObjectMeta{UID: "uid-1"}}
	found := []exoscale.Key{
		{ID: "legacy", Name: "k"}, // legacy keys carry no labels: their name is all there is
		{ID: "mine", RoleID: "r1", Labels: map[string]string{LabelUID: "uid-1"}},
		{ID: "another AccessKey's", RoleID: "r2", Labels: map[string]string{LabelUID: "uid-2"}},
		{ID: "unlabelled role", RoleID: "r3", Labels: map[string]string{}},
		{RoleID: "r4", Labels: map[string]string{LabelUID: "uid-1"}}, // a role whose key was never made
	}
	var got []string
	for _, key := range mintedFor(ak, found) {
		got = append(got, key.ID+"/"+key.RoleID)
	}
	want := []string{"legacy/", "mine/r1", "/r4"}
	if len(got) != len(want) {
		t.Fatalf("mintedFor = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("mintedFor = %v, want %v", got, want)
		}
	}
}
