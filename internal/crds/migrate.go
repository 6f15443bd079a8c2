package crds

import (
	"context"
	"fmt"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Migrated is what Migrate did to one CRD's objects.
type Migrated struct {
	CRD string
	// From are the versions objects were stored at before.
	From []string
	// To is the storage version every object is now stored at.
	To string
	// Objects is how many were rewritten.
	Objects int
}

// Migrate rewrites every object of the CRD named name at its storage
// version, and then trims status.storedVersions to that version alone, so
// an older version can later be dropped from the CRD. Each object gets an
// empty patch: the API server stores what it reads back at the storage
// version, and changes nothing else (not even its resourceVersion when it
// already was). r lists (the API server's copy, not a cache); w patches.
// A CRD whose storedVersions is already the storage version alone is left
// as it is.
func Migrate(ctx context.Context, r client.Reader, w client.Client, name string) (Migrated, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return Migrated{}, fmt.Errorf("reading CRD %s: %w", name, err)
	}
	storage := StorageVersion(crd)
	done := Migrated{CRD: name, From: slices.Clone(crd.Status.StoredVersions), To: storage}
	if storage == "" || slices.Equal(crd.Status.StoredVersions, []string{storage}) {
		return done, nil
	}
	gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: storage, Kind: crd.Spec.Names.ListKind}
	continueToken := ""
	for {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk)
		if err := r.List(ctx, list, client.Limit(500), client.Continue(continueToken)); err != nil {
			return done, fmt.Errorf("listing %s: %w", crd.Spec.Names.Plural, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			obj.SetGroupVersionKind(gvk.GroupVersion().WithKind(crd.Spec.Names.Kind))
			err := w.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte("{}")))
			if apierrors.IsNotFound(err) {
				continue // deleted meanwhile: nothing left stored
			}
			if err != nil {
				return done, fmt.Errorf("rewriting %s %s: %w", crd.Spec.Names.Kind, client.ObjectKeyFromObject(obj), err)
			}
			done.Objects++
		}
		if continueToken = list.Continue; continueToken == "" {
			break
		}
	}
	// Objects created meanwhile were stored at the storage version.
	base := crd.DeepCopy()
	crd.Status.StoredVersions = []string{storage}
	if err := w.Status().Patch(ctx, crd, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return done, fmt.Errorf("trimming the storedVersions of CRD %s: %w", name, err)
	}
	return done, nil
}

// SetStorageVersion makes version the one the CRD named name stores (the
// way back to an earlier release, whose manager reads only the versions it
// knows: `kubectl exokey migrate --storage-version`). Objects move with
// Migrate afterwards.
func SetStorageVersion(ctx context.Context, c client.Client, name, version string) error {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return fmt.Errorf("reading CRD %s: %w", name, err)
	}
	base := crd.DeepCopy()
	found := false
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		v.Storage = v.Name == version
		found = found || v.Storage
		if v.Storage && !v.Served {
			return fmt.Errorf("CRD %s does not serve %s", name, version)
		}
	}
	if !found {
		return fmt.Errorf("CRD %s has no version %s", name, version)
	}
	return c.Patch(ctx, crd, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// ServeOnly has the CRD named name serve version alone, with no conversion:
// the shape of a CRD from before a second version, which the previous
// release's manager (and every other client) reads without the webhook.
// It refuses unless every object is stored at version already (Migrate).
func ServeOnly(ctx context.Context, c client.Client, name, version string) error {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return fmt.Errorf("reading CRD %s: %w", name, err)
	}
	if !slices.Equal(crd.Status.StoredVersions, []string{version}) {
		return fmt.Errorf("CRD %s has objects stored at %v: move them to %s first", name, crd.Status.StoredVersions, version)
	}
	base := crd.DeepCopy()
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].Served = crd.Spec.Versions[i].Name == version
	}
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	return c.Patch(ctx, crd, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}
