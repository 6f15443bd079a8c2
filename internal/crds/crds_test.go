package crds

import (
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// Missing names what the installed CRD lacks of the built-in one.
func TestMissing(t *testing.T) {
	builtin, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var accessKeys *apiextensionsv1.CustomResourceDefinition
	for _, c := range builtin {
		if c.Name == "accesskeys.iam.exokey.io" {
			accessKeys = c
		}
	}
	if accessKeys == nil {
		t.Fatal("the built-in CRDs hold no accesskeys.iam.exokey.io")
	}
	if got := Missing(accessKeys, accessKeys.DeepCopy()); len(got) != 0 {
		t.Fatalf("a CRD lacks %v of itself", got)
	}

	noPending := accessKeys.DeepCopy()
	for i := range noPending.Spec.Versions {
		if noPending.Spec.Versions[i].Name == "v1beta1" {
			status := noPending.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["status"]
			delete(status.Properties, "pending")
			noPending.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["status"] = status
		}
	}
	got := Missing(accessKeys, noPending)
	if !slices.Contains(got, "v1beta1: .status.pending") || !slices.Contains(got, "v1beta1: .status.pending.keyName") {
		t.Fatalf("without status.pending, Missing says %v", got)
	}

	unserved := accessKeys.DeepCopy()
	unserved.Spec.Versions = slices.DeleteFunc(unserved.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool {
		return v.Name == "v1beta1"
	})
	if got := Missing(accessKeys, unserved); !slices.Equal(got, []string{"v1beta1" + notServed}) {
		t.Fatalf("without v1beta1, Missing says %v", got)
	}
}
