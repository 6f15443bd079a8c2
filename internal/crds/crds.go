// Package crds checks the installed CRDs against those the manager was
// built with, and moves stored objects to the storage version.
//
// A manager that meets an older CRD would have the API server prune the
// status fields the old schema lacks (status.pending among them) from
// every write, and lose the record that keeps a create from leaking a key.
// So the controllers reconcile only while every field of the built-in
// schema is in the installed one: the Gate (docs/operations/sizing-and-upgrades.md).
package crds

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/exokey/exokey/config/crd"
)

// Builtin returns the CRDs this manager was built with.
func Builtin() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(crd.Bases, "bases/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, name := range files {
		raw, err := fs.ReadFile(crd.Bases, name)
		if err != nil {
			return nil, err
		}
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(raw, c); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Names are the names of the CRDs the manager was built with.
func Names() ([]string, error) {
	builtin, err := Builtin()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(builtin))
	for _, c := range builtin {
		names = append(names, c.Name)
	}
	return names, nil
}

// StorageVersion is the version a CRD stores.
func StorageVersion(c *apiextensionsv1.CustomResourceDefinition) string {
	for _, v := range c.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}

const notServed = " is not served"

// Missing lists what the installed CRD lacks of the built-in one: a served
// version, or a field of a version's schema, by path (such as
// "v1beta1: .status.pending"). Empty means the installed CRD holds all
// the manager writes.
func Missing(builtin, installed *apiextensionsv1.CustomResourceDefinition) []string {
	var missing []string
	for _, want := range builtin.Spec.Versions {
		i := slices.IndexFunc(installed.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool {
			return v.Name == want.Name
		})
		if i < 0 || !installed.Spec.Versions[i].Served {
			missing = append(missing, want.Name+notServed)
			continue
		}
		have := map[string]bool{}
		if s := installed.Spec.Versions[i].Schema; s != nil && s.OpenAPIV3Schema != nil {
			paths("", s.OpenAPIV3Schema, func(p string) { have[p] = true })
		}
		if want.Schema == nil || want.Schema.OpenAPIV3Schema == nil {
			continue
		}
		paths("", want.Schema.OpenAPIV3Schema, func(p string) {
			if !have[p] {
				missing = append(missing, want.Name+": "+p)
			}
		})
	}
	return missing
}

// paths calls found with the path of every property below s.
func paths(prefix string, s *apiextensionsv1.JSONSchemaProps, found func(string)) {
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := prefix + "." + name
		found(p)
		child := s.Properties[name]
		paths(p, &child, found)
	}
	if s.Items != nil && s.Items.Schema != nil {
		paths(prefix+"[]", s.Items.Schema, found)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		paths(prefix+"{}", s.AdditionalProperties.Schema, found)
	}
}

// Outdated reads the installed CRDs and says what they lack, one line a
// CRD ("" when they are current), and which of them do not serve a version
// the manager reads at all (such a CRD cannot even be watched).
func Outdated(ctx context.Context, r client.Reader, builtin []*apiextensionsv1.CustomResourceDefinition) (lacks string, unserved []string, err error) {
	var lines []string
	for _, want := range builtin {
		installed := &apiextensionsv1.CustomResourceDefinition{}
		if err := r.Get(ctx, client.ObjectKey{Name: want.Name}, installed); err != nil {
			return "", nil, fmt.Errorf("reading CRD %s: %w", want.Name, err)
		}
		if missing := Missing(want, installed); len(missing) > 0 {
			for _, m := range missing {
				if strings.HasSuffix(m, notServed) {
					unserved = append(unserved, want.Name+": "+m)
				}
			}
			more := ""
			if len(missing) > 3 {
				more = fmt.Sprintf(" and %d more", len(missing)-3)
				missing = missing[:3]
			}
			lines = append(lines, fmt.Sprintf("CRD %s lacks %s%s", want.Name, strings.Join(missing, ", "), more))
		}
	}
	return strings.Join(lines, "; "), unserved, nil
}
