package controller

import (
	"fmt"
	"runtime/debug"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// The inventory's judgement of one AccessKey against a listing, as a table.

func TestInventoryJudgesAKeyAgainstTheListing(t *testing.T) {
	inv := &Inventory{Catalog: catalog.Default(), ClusterID: "c1"}
	ak := &iamv1beta1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "backup", UID: "u1"},
		Spec:       iamv1beta1.AccessKeySpec{Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:backups"}},
		Status:     iamv1beta1.AccessKeyStatus{KeyID: "EXOkey", RoleID: "role"},
	}
	compiled, err := exoscale.CompilePolicy(KeySpecOf(ak, ""), catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]string{LabelUID: "u1", LabelCluster: "c1", LabelNamespace: "team", LabelName: "backup"}
	listing := func(change func(*exoscale.Listing)) exoscale.Listing {
		l := exoscale.Listing{Keys: map[string]string{"EXOkey": "role"}, Roles: map[string]exoscale.Role{
			"role": {Name: "k8s-team-backup-1", Labels: ours, Policy: compiled}}}
		if change != nil {
			change(&l)
		}
		return l
	}
	relabel := func(name, value string) func(*exoscale.Listing) {
		return func(l *exoscale.Listing) {
			labels := map[string]string{}
			for k, v := range ours {
				labels[k] = v
			}
			labels[name] = value
			role := l.Roles["role"]
			role.Labels = labels
			l.Roles["role"] = role
		}
	}
	for _, tc := range []struct {
		name    string
		listing exoscale.Listing
		session bool
		want    driftKind // "" is no drift
	}{
		{"as minted", listing(nil), false, ""},
		{"key gone", listing(func(l *exoscale.Listing) { delete(l.Keys, "EXOkey") }), false, driftGone},
		{"role gone", listing(func(l *exoscale.Listing) { delete(l.Roles, "role") }), false, driftGone},
		{"widened", listing(func(l *exoscale.Listing) {
			l.Roles["role"] = exoscale.Role{Labels: ours, Policy: policy.Policy{DefaultServiceStrategy: "allow"}}
		}), false, driftPolicy},
		{"narrowed", listing(func(l *exoscale.Listing) {
			l.Roles["role"] = exoscale.Role{Labels: ours, Policy: policy.Policy{DefaultServiceStrategy: "deny"}}
		}), false, driftPolicy},
		{"labelled with another AccessKey's UID", listing(relabel(LabelUID, "u2")), false, driftRelabelled},
		{"labelled with another cluster", listing(relabel(LabelCluster, "c2")), false, driftRelabelled},
		{"a session credential is not listed, its role is", listing(func(l *exoscale.Listing) { delete(l.Keys, "EXOkey") }), true, ""},
		{"a session role widened", listing(func(l *exoscale.Listing) {
			delete(l.Keys, "EXOkey")
			l.Roles["role"] = exoscale.Role{Labels: ours, Policy: policy.Policy{DefaultServiceStrategy: "allow"}}
		}), true, driftPolicy},
		{"a legacy key listed", exoscale.Listing{Keys: map[string]string{"EXOkey": ""}}, false, ""},
		{"a legacy key gone", exoscale.Listing{Keys: map[string]string{}}, false, driftGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ak := ak.DeepCopy()
			if tc.session {
				expires := metav1.NewTime(time.Now().Add(time.Hour))
				ak.Status.ExpiresAt = &expires
			}
			if tc.listing.Roles == nil {
				ak.Status.RoleID = ""
			}
			f, drifted := inv.judge(ak, tc.listing)
			if drifted != (tc.want != "") || f.kind != tc.want {
				t.Errorf("judge = %q (drifted %v), want %q", f.kind, drifted, tc.want)
			}
			if tc.want == driftPolicy && policy.Equal(f.found, compiled) {
				t.Error("the finding does not carry the policy found")
			}
		})
	}
}

func TestInventoryJudgesOnlySettledKeysOlderThanTheListing(t *testing.T) {
	iss := clusterKeyIssuer(&iamv1beta1.ClusterKeyIssuer{ObjectMeta: metav1.ObjectMeta{Name: "org", UID: "i1"}})
	other := clusterKeyIssuer(&iamv1beta1.ClusterKeyIssuer{ObjectMeta: metav1.ObjectMeta{Name: "org", UID: "i2"}})
	listedAt := time.Now()
	minted := metav1.NewTime(listedAt.Add(-time.Minute))
	base := &iamv1beta1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "backup", UID: "u1"},
		Spec:       iamv1beta1.AccessKeySpec{IssuerRef: iamv1beta1.IssuerReference{Name: "org"}, Operations: []string{"get-sos-object"}},
	}
	base.Status = iamv1beta1.AccessKeyStatus{KeyID: "EXOkey", CreatedAt: &minted, RestrictionHash: restrictionHash(base)}
	identity := iss.identity()
	base.Status.Issuer = identity
	for _, tc := range []struct {
		name   string
		change func(*iamv1beta1.AccessKey)
		want   bool
	}{
		{"settled and older", func(*iamv1beta1.AccessKey) {}, true},
		{"no key", func(ak *iamv1beta1.AccessKey) { ak.Status.KeyID = "" }, false},
		{"a create in flight", func(ak *iamv1beta1.AccessKey) { ak.Status.Pending = iamv1beta1.PendingKey{KeyName: "k"} }, false},
		{"minted after the listing began", func(ak *iamv1beta1.AccessKey) {
			after := metav1.NewTime(listedAt.Add(time.Millisecond))
			ak.Status.CreatedAt = &after
		}, false},
		{"spec changed: a replacement is due anyway", func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"list-zones"} }, false},
		{"minted by an issuer of the same name before it was recreated", func(ak *iamv1beta1.AccessKey) {
			identity := other.identity()
			ak.Status.Issuer = identity
		}, false},
		{"being deleted", func(ak *iamv1beta1.AccessKey) {
			now := metav1.Now()
			ak.DeletionTimestamp = &now
		}, false},
	} {
		ak := base.DeepCopy()
		tc.change(ak)
		if got := judgeable(ak, iss, listedAt); got != tc.want {
			t.Errorf("%s: judgeable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCompareGrantsTellsWidenedFromNarrowed(t *testing.T) {
	cat := catalog.Default()
	want, err := exoscale.CompilePolicy(exoscale.KeySpec{Operations: []string{"get-sos-object", "list-sos-bucket"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	narrower, _ := exoscale.CompilePolicy(exoscale.KeySpec{Operations: []string{"get-sos-object"}}, cat)
	other, _ := exoscale.CompilePolicy(exoscale.KeySpec{Operations: []string{"get-sos-object", "list-zones"}}, cat)
	for _, tc := range []struct {
		name  string
		found policy.Policy
		want  string
	}{
		{"allow everything", policy.Policy{DefaultServiceStrategy: "allow"}, DriftWidened},
		{"deny everything", policy.Policy{DefaultServiceStrategy: "deny"}, DriftNarrowed},
		{"an operation fewer", narrower, DriftNarrowed},
		{"one operation for another", other, DriftChanged},
	} {
		if got := compareGrants(want, tc.found, cat); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestUnlistedKeysAreLookedUpOncePerPeriodSpreadOverIt(t *testing.T) {
	inv := &Inventory{}
	now := time.Now()
	due := 0
	const n = 1000
	for i := range n {
		name := types.NamespacedName{Namespace: "team", Name: fmt.Sprintf("key-%d", i)}
		if inv.lookupDue(name, "u", now) {
			due++
		}
	}
	if due != 0 {
		t.Fatalf("%d of %d keys due at first sight: a restart would look them all up at once", due, n)
	}
	// Over one period, minute by minute: each key exactly once, spread out.
	busiest := 0
	for minute := 1; minute <= 20; minute++ {
		inMinute := 0
		for i := range n {
			name := types.NamespacedName{Namespace: "team", Name: fmt.Sprintf("key-%d", i)}
			if inv.lookupDue(name, "u", now.Add(time.Duration(minute)*time.Minute)) {
				inMinute++
				due++
			}
		}
		busiest = max(busiest, inMinute)
	}
	if due != n {
		t.Errorf("%d lookups over one period for %d keys, want one each", due, n)
	}
	if busiest > n/20*2 {
		t.Errorf("the busiest minute looked up %d keys, want about %d", busiest, n/20)
	}
}

func TestListingsAreHeldWithAnEagerCollector(t *testing.T) {
	for _, gogc := range []int{50, 100, 5, -1} {
		t.Run(fmt.Sprint("GOGC=", gogc), func(t *testing.T) {
			defer debug.SetGCPercent(debug.SetGCPercent(gogc))
			want := min(gogc, listingGCPercent)
			if gogc < 0 {
				want = gogc // a collector turned off stays off
			}
			outer := collectEagerly()
			inner := collectEagerly() // nested: released first, it restores the eager percent
			if got := debug.SetGCPercent(want); got != want {
				t.Errorf("while two listings are held: GOGC %d, want %d", got, want)
			}
			inner()
			if got := debug.SetGCPercent(want); got != want {
				t.Errorf("while one listing is still held: GOGC %d, want %d", got, want)
			}
			outer()
			if got := debug.SetGCPercent(gogc); got != gogc {
				t.Errorf("once no listing is held: GOGC %d, want %d back", got, gogc)
			}
		})
	}
}

func TestListedOwnerAnswersFromTheLastListing(t *testing.T) {
	iss := &issuer{Kind: iamv1beta1.ClusterKeyIssuerKind, Key: types.NamespacedName{Name: "i"}}
	listing := exoscale.Listing{
		Keys: map[string]string{"EXOmine": "r1", "EXOtheirs": "r2", "EXOelsewhere": "r3"},
		Roles: map[string]exoscale.Role{
			"r1": {Labels: map[string]string{LabelUID: "uid-a", LabelCluster: "c1"}},
			"r2": {Labels: map[string]string{LabelUID: "uid-b", LabelCluster: "c1"}},
			"r3": {Labels: map[string]string{LabelUID: "uid-a", LabelCluster: "another cluster"}},
		},
	}
	inv := &Inventory{owned: map[string][]exoscale.Key{issuerID(iss): ownedBy(listing, "c1")}}
	for keyID, want := range map[string]struct {
		roleID, uid string
		ok          bool
	}{
		"EXOmine":      {"r1", "uid-a", true},
		"EXOtheirs":    {"r2", "uid-b", true},
		"EXOelsewhere": {"", "", false}, // another cluster's role: not this inventory's to answer
		"EXOunlisted":  {"", "", false},
	} {
		roleID, uid, ok := inv.listedOwner(iss, keyID)
		if roleID != want.roleID || uid != want.uid || ok != want.ok {
			t.Errorf("%s: %q %q %v, want %+v", keyID, roleID, uid, ok, want)
		}
	}
}
