package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

func TestMintedForKeepsOnlyThisAccessKeysKeys(t *testing.T) {
	ak := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{UID: "uid-1"}}
	names, err := NewKeyNames([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	found := []exoscale.Key{
		{ID: "legacy", Name: "k-0a0b0c0d0e0f"}, // a legacy name of the earlier form proves nothing: trusted as before
		{ID: "proven", Name: names.name("k8s-ns-ak", "uid-1")},
		{ID: "another's", Name: names.name("k8s-ns-ak", "uid-2")},
		{ID: "mine", RoleID: "r1", Labels: map[string]string{LabelUID: "uid-1"}},
		{ID: "another AccessKey's", RoleID: "r2", Labels: map[string]string{LabelUID: "uid-2"}},
		{ID: "unlabelled role", RoleID: "r3", Labels: map[string]string{}},
		{RoleID: "r4", Labels: map[string]string{LabelUID: "uid-1"}}, // a role whose key was never made
	}
	var got []string
	for _, key := range mintedFor(ak, found, names) {
		got = append(got, key.ID+"/"+key.RoleID)
	}
	want := []string{"legacy/", "proven/", "mine/r1", "/r4"}
	if len(got) != len(want) {
		t.Fatalf("mintedFor = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("mintedFor = %v, want %v", got, want)
		}
	}
}

func TestKeyNamesProveTheirAccessKey(t *testing.T) {
	names, err := NewKeyNames([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKeyNames([]byte("fedcba9876543210fedcba9876543210"))
	name := names.name("k8s-team-a-app", "uid-a")
	if len(name) != len("k8s-team-a-app")+keyNameSuffix {
		t.Fatalf("name %q", name)
	}
	for _, tc := range []struct {
		what           string
		names          *KeyNames
		name           string
		uid            string
		owned, proving bool
	}{
		{"its own", names, name, "uid-a", true, true},
		{"another AccessKey's UID", names, name, "uid-b", false, true},
		{"another cluster's secret", other, name, "uid-a", false, true},
		{"a tenant's edit of the base", names, "k8s-team-b-app" + name[len("k8s-team-a-app"):], "uid-a", false, true},
		{"the earlier form", names, "k8s-team-a-app-0a0b0c0d0e0f", "uid-a", false, false},
		{"no secret", nil, name, "uid-a", false, false},
	} {
		owned, proving := tc.names.proves(tc.name, types.UID(tc.uid))
		if owned != tc.owned || proving != tc.proving {
			t.Errorf("%s: proves = %v, %v; want %v, %v", tc.what, owned, proving, tc.owned, tc.proving)
		}
	}
	if _, err := NewKeyNames([]byte("short")); err == nil {
		t.Error("a short secret is refused")
	}
}
