package controller

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// BenchmarkInventory judges 10,000 AccessKeys against a listing of their
// 10,000 keys and roles, as one issuer's inventory does once a drift
// period, and reports what the inventory keeps between listings.
func BenchmarkInventory(b *testing.B) {
	const n = 10_000
	cat := catalog.Default()
	inv := &Inventory{Catalog: cat, ClusterID: uuid.NewString()}
	listing := exoscale.Listing{Keys: map[string]string{}, Roles: map[string]exoscale.Role{}}
	accessKeys := make([]*iamv1beta1.AccessKey, n)
	for i := range n {
		ak := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%03d", i%100), Name: fmt.Sprintf("backup-%05d", i), UID: types.UID(uuid.NewString())},
			Spec: iamv1beta1.AccessKeySpec{Operations: []string{"get-sos-object", "put-sos-object", "list-sos-bucket"},
				Resources: []string{fmt.Sprintf("sos/bucket:backups-%d", i)}},
		}
		keyID, roleID := fmt.Sprintf("EXO%024x", i), uuid.NewString()
		ak.Status = iamv1beta1.AccessKeyStatus{KeyID: keyID, RoleID: roleID}
		compiled, err := exoscale.CompilePolicy(KeySpecOf(ak, ""), cat)
		if err != nil {
			b.Fatal(err)
		}
		listing.Keys[keyID] = roleID
		listing.Roles[roleID] = exoscale.Role{Name: "k8s-" + ak.Namespace + "-" + ak.Name + "-0a0b0c0d0e0f", Policy: compiled,
			Labels: map[string]string{LabelNamespace: ak.Namespace, LabelName: ak.Name, LabelUID: string(ak.UID), LabelCluster: inv.ClusterID}}
		accessKeys[i] = ak
	}

	var kept []exoscale.Key
	b.ResetTimer()
	started := time.Now()
	for b.Loop() {
		for _, ak := range accessKeys {
			if _, drifted := inv.judge(ak, listing); drifted {
				b.Fatalf("%s drifted", ak.Name)
			}
		}
		kept = ownedBy(listing, inv.ClusterID)
	}
	perListing := time.Since(started) / time.Duration(b.N)
	b.StopTimer()

	// What ListAll's collection after a listing costs with 10,000
	// AccessKeys and their listing live.
	collecting := time.Now()
	debug.FreeOSMemory()
	collection := time.Since(collecting)
	if len(accessKeys) != n || len(listing.Roles) != n {
		b.Fatal("the AccessKeys and their listing were not live during the collection")
	}

	// What stays between listings: the owned keys, once the listing is gone.
	listing = exoscale.Listing{}
	runtime.GC()
	var withKept, without runtime.MemStats
	runtime.ReadMemStats(&withKept)
	if len(kept) != n {
		b.Fatalf("kept %d keys, want %d", len(kept), n)
	}
	kept = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	keptMiB := float64(withKept.HeapAlloc-without.HeapAlloc) / (1 << 20)
	b.ReportMetric(perListing.Seconds()*1000, "ms/listing")
	b.ReportMetric(collection.Seconds()*1000, "ms/collection")
	b.ReportMetric(keptMiB/(n/1000), "MiB-kept/1000keys")
	b.Logf("10,000 keys: %s a listing judged, %s the collection after it, %.2f MiB kept between listings (%.3f MiB per 1,000 keys)",
		perListing.Round(time.Millisecond), collection.Round(time.Millisecond), keptMiB, keptMiB/(n/1000))
}
