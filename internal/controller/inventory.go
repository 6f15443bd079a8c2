package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Inventory is what exists at Exoscale, per issuer. Once a period each
// issuer lists its organisation in one call per kind (list-iam-roles and
// list-api-keys, or list-access-keys), and the listing is held against the
// AccessKeys whose keys that issuer minted: one whose key or role is gone,
// whose role no longer names it, or whose role's policy is not the one
// exokey compiles for it, is sent to the reconciler with what was found.
// The steady state costs O(issuers) calls a period, not one a key. The
// orphan sweep reads the roles of this cluster from the same listing.
//
// A listing is a hint, never an instruction: the reconciler looks a key
// reported gone up on its own before it replaces it, and only a role that
// status records as this AccessKey's, labelled with its UID and this
// cluster, is ever rewritten.
type Inventory struct {
	// Reader reads issuers and AccessKeys: the manager's cache.
	Reader  client.Reader
	Issuers *IssuerClients
	Catalog *catalog.Catalog
	// ClusterID is this cluster's label on the roles its exokey mints.
	ClusterID string
	// Period is how often each issuer is listed.
	Period time.Duration
	// UnlistedLookupPeriod is how often each key of an issuer that may not
	// list is looked up on its own (default DefaultUnlistedLookupPeriod).
	UnlistedLookupPeriod time.Duration
	Clock                clock.PassiveClock

	mu sync.Mutex
	// findings are the AccessKeys the last listings found drifted, until
	// the reconciler takes them.
	findings map[types.NamespacedName]finding
	// owned are, by issuer, the keys (and keyless roles) whose roles carry
	// this cluster's label, as last listed: what the orphan sweep judges.
	owned map[string][]exoscale.Key
	// lookedUp is when each AccessKey of an issuer that may not list was
	// last sent to be looked up on its own.
	lookedUp map[types.NamespacedName]lookup
	events   chan event.GenericEvent
	// listedKeys is how many keys the last ListAll's listings held.
	listedKeys atomic.Int64
}

// DefaultUnlistedLookupPeriod is how often a key is looked up on its own
// where its issuer's key may not list: one call a key, so spread over 20
// minutes as before the inventory, not made once a drift period.
const DefaultUnlistedLookupPeriod = 20 * time.Minute

type lookup struct {
	uid types.UID
	at  time.Time
}

// driftKind is what a listing found wrong with an AccessKey's key.
type driftKind string

const (
	// driftGone: the key, or its role, is not in the listing.
	driftGone driftKind = "Gone"
	// driftUnlisted: the issuer's key may not list its organisation, so
	// the key is looked up on its own.
	driftUnlisted driftKind = "Unlisted"
	// driftPolicy: the role's policy is not the one exokey compiles.
	driftPolicy driftKind = "Policy"
	// driftRelabelled: the role no longer names this AccessKey and this
	// cluster, so it is not exokey's to rewrite: the key is replaced.
	driftRelabelled driftKind = "Relabelled"
)

// finding is what a listing found of one AccessKey's current key.
type finding struct {
	uid   types.UID
	keyID string
	kind  driftKind
	// found is the role's policy as listed (driftPolicy only).
	found policy.Policy
}

// NeedLeaderElection: the listing feeds the leader's reconciler.
func (inv *Inventory) NeedLeaderElection() bool { return true }

// Start lists every issuer at once, then once a period, until ctx ends.
func (inv *Inventory) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("inventory")
	for {
		if err := inv.ListAll(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "take the inventory")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(inv.Period + time.Duration(rand.Int64N(int64(inv.Period)/10+1))): // up to 10% jitter
		}
	}
}

// ListAll takes every issuer's inventory, the issuers in parallel so one
// that hangs does not hold the others', and sends the drifted AccessKeys
// to the reconciler.
//
// A listing is the largest thing the manager holds at once: every role of
// an organisation with its policy, decoded from an answer held whole,
// beside every AccessKey of the issuer: about 3 KiB a key, for a second or
// two. A collection that ends meanwhile would set the heap's goal 40%
// larger again than all of it (GOGC 40), and the heap would grow into that
// goal after the listing is gone: at 10,000 keys it was 26 MiB of the
// manager's peak. So the collector runs eagerly while the listing is held,
// and once more when it is dropped, which returns its pages to the system:
// 26 ms with 10,000 keys live (BenchmarkInventory), once a period. A
// smaller organisation (the last listings held fewer than eagerListingKeys
// keys) is not worth a collection: its listing is a few MiB at most.
func (inv *Inventory) ListAll(ctx context.Context) error {
	issuers, err := listIssuers(ctx, inv.Reader)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, max(inv.Period, time.Minute))
	defer cancel()
	if inv.listedKeys.Load() >= eagerListingKeys {
		defer collectEagerly()()
	}
	errs := make([]error, len(issuers))
	listed := make([]int, len(issuers))
	var wg sync.WaitGroup
	for i, iss := range issuers {
		wg.Go(func() { listed[i], errs[i] = inv.list(ctx, iss) })
	}
	wg.Wait()
	var total int64
	for _, n := range listed {
		total += int64(n)
	}
	inv.listedKeys.Store(total)
	return errors.Join(errs...)
}

// eagerListingKeys is how many keys the last listings must have held for
// the next to be collected eagerly.
const eagerListingKeys = 1000

// listingGCPercent is the collector's GOGC while a listing is held.
const listingGCPercent = 10

// collectEagerly lowers the GC percent until the function it returns is
// called, which restores it and collects. A collector turned off
// (GOGC=off) or already as eager is left as it is. Only the inventory's
// loop calls it, one listing round at a time.
func collectEagerly() func() {
	previous := debug.SetGCPercent(listingGCPercent)
	if previous < listingGCPercent {
		debug.SetGCPercent(previous)
		return func() {}
	}
	return func() {
		debug.SetGCPercent(previous)
		debug.FreeOSMemory()
	}
}

// list takes one issuer's inventory and returns how many keys its listing held.
func (inv *Inventory) list(ctx context.Context, iss *issuer) (int, error) {
	keys, err := inv.Issuers.Keys(ctx, iss)
	if err != nil {
		return 0, nil // an issuer that cannot be used now says why in its own condition
	}
	started := inv.Clock.Now()
	listing, err := keys.List(ctx)
	// A key that may not list is answered 403: its keys are looked up one
	// by one instead, as the issuer's Ready condition warns.
	unlisted := exoscale.IsTerminal(err)
	if err != nil && !unlisted {
		return 0, fmt.Errorf("list %s %s: %w", iss.Kind, iss.Key, err)
	}
	// The cache's own objects, not copies: a listing judges every AccessKey
	// of the issuer at once, and copies of 10,000 of them were as much
	// again as the cache holds. Nothing here writes to them.
	accessKeys := &iamv1beta1.AccessKeyList{}
	if err := inv.Reader.List(ctx, accessKeys, client.MatchingFields{issuerIndex: issuerIndexValue(iss.Kind, iss.Key.Namespace, iss.Key.Name)},
		client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	found := map[types.NamespacedName]finding{}
	healthy := map[types.NamespacedName]string{}
	for i := range accessKeys.Items {
		ak := &accessKeys.Items[i]
		if !judgeable(ak, iss, started) {
			continue
		}
		name := client.ObjectKeyFromObject(ak)
		f, drifted := finding{kind: driftUnlisted}, true
		if unlisted {
			drifted = inv.lookupDue(name, ak.UID, started)
		} else {
			f, drifted = inv.judge(ak, listing)
		}
		if !drifted {
			healthy[name] = ak.Status.KeyID
			continue
		}
		f.uid, f.keyID = ak.UID, ak.Status.KeyID
		found[name] = f
	}

	inv.mu.Lock()
	if inv.findings == nil {
		inv.findings, inv.owned = map[types.NamespacedName]finding{}, map[string][]exoscale.Key{}
	}
	for name, keyID := range healthy {
		if f, ok := inv.findings[name]; ok && f.keyID == keyID {
			delete(inv.findings, name) // put right meanwhile
		}
	}
	for name, f := range found {
		inv.findings[name] = f
	}
	if unlisted {
		delete(inv.owned, issuerID(iss))
	} else {
		inv.owned[issuerID(iss)] = ownedBy(listing, inv.ClusterID)
	}
	inv.mu.Unlock()

	if len(found) > 0 && !unlisted {
		logf.FromContext(ctx).Info("the inventory found drifted keys", "issuer", issuerID(iss), "drifted", len(found))
	}
	for name := range found {
		ak := &iamv1beta1.AccessKey{}
		ak.Namespace, ak.Name = name.Namespace, name.Name
		select {
		case inv.events <- event.GenericEvent{Object: ak}:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return len(listing.Keys), nil
}

// lookupDue reports whether an AccessKey of an issuer that may not list
// is due a lookup of its own. One not seen before gets a random point in
// the period, so a restart does not look every key up at once.
func (inv *Inventory) lookupDue(name types.NamespacedName, uid types.UID, now time.Time) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.lookedUp == nil {
		inv.lookedUp = map[types.NamespacedName]lookup{}
	}
	last, ok := inv.lookedUp[name]
	if !ok || last.uid != uid {
		last = lookup{uid: uid, at: now.Add(-time.Duration(rand.Int64N(int64(inv.unlistedPeriod()))))}
	}
	if now.Sub(last.at) < inv.unlistedPeriod() {
		inv.lookedUp[name] = last
		return false
	}
	inv.lookedUp[name] = lookup{uid: uid, at: now}
	return true
}

func (inv *Inventory) unlistedPeriod() time.Duration {
	if inv.UnlistedLookupPeriod > 0 {
		return inv.UnlistedLookupPeriod
	}
	return DefaultUnlistedLookupPeriod
}

// judgeable reports whether a listing taken at started can judge the
// AccessKey's current key: one iss minted, settled (no create in flight,
// no replacement due for a changed spec) and older than the listing.
func judgeable(ak *iamv1beta1.AccessKey, iss *issuer, started time.Time) bool {
	status := &ak.Status
	if status.KeyID == "" || !status.Pending.IsZero() || !ak.DeletionTimestamp.IsZero() || status.RestrictionHash != restrictionHash(ak) {
		return false
	}
	if status.CreatedAt == nil || !status.CreatedAt.Time.Before(started) {
		return false
	}
	if !status.Issuer.IsZero() {
		return status.Issuer == iss.identity()
	}
	return kindOf(ak.Spec.IssuerRef) == iss.Kind && ak.Spec.IssuerRef.Name == iss.Key.Name
}

// judge holds an AccessKey's current key against a listing.
func (inv *Inventory) judge(ak *iamv1beta1.AccessKey, listing exoscale.Listing) (finding, bool) {
	status := &ak.Status
	if status.ExpiresAt == nil { // a session credential is not listed; its role is
		if _, ok := listing.Keys[status.KeyID]; !ok {
			return finding{kind: driftGone}, true
		}
	}
	if listing.Roles == nil || status.RoleID == "" {
		return finding{}, false // a legacy key cannot change: it exists or not
	}
	role, ok := listing.Roles[status.RoleID]
	if !ok {
		return finding{kind: driftGone}, true
	}
	if role.Labels[LabelUID] != string(ak.UID) || (inv.ClusterID != "" && role.Labels[LabelCluster] != inv.ClusterID) {
		return finding{kind: driftRelabelled}, true
	}
	want, err := exoscale.CompilePolicy(KeySpecOf(ak, ""), inv.Catalog)
	if err != nil {
		return finding{}, false // the reconciler refuses such a spec, with the reason
	}
	if !policy.Equal(want, role.Policy) {
		return finding{kind: driftPolicy, found: role.Policy}, true
	}
	return finding{}, false
}

// ownedBy lists the keys, and the roles left without one, whose roles
// carry this cluster's label.
func ownedBy(listing exoscale.Listing, clusterID string) []exoscale.Key {
	if clusterID == "" {
		return nil
	}
	var owned []exoscale.Key
	withKey := map[string]bool{}
	for keyID, roleID := range listing.Keys {
		if role, ok := listing.Roles[roleID]; ok && role.Labels[LabelCluster] == clusterID {
			owned = append(owned, exoscale.Key{ID: keyID, Name: role.Name, RoleID: roleID, Labels: role.Labels})
			withKey[roleID] = true
		}
	}
	for roleID, role := range listing.Roles {
		if role.Labels[LabelCluster] == clusterID && !withKey[roleID] {
			owned = append(owned, exoscale.Key{Name: role.Name, RoleID: roleID, Labels: role.Labels})
		}
	}
	return owned
}

// take returns, and forgets, what the last listing found of the
// AccessKey's current key; false when it found nothing wrong.
func (inv *Inventory) take(ak *iamv1beta1.AccessKey) (finding, bool) {
	name := client.ObjectKeyFromObject(ak)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	f, ok := inv.findings[name]
	if !ok {
		return finding{}, false
	}
	delete(inv.findings, name)
	return f, f.uid == ak.UID && f.keyID == ak.Status.KeyID
}

// forget drops what is known of an AccessKey that is gone.
func (inv *Inventory) forget(name types.NamespacedName) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	delete(inv.findings, name)
	delete(inv.lookedUp, name)
}

// Owned returns the keys of this cluster's roles in an issuer's last
// listing; false when the issuer has not been listed.
func (inv *Inventory) Owned(iss *issuer) ([]exoscale.Key, bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	owned, ok := inv.owned[issuerID(iss)]
	return owned, ok
}

// listedOwner returns what the issuer's last listing says of a key: its
// role and the UID label of that role; false when the listing does not
// hold it (a key minted since, or not this cluster's). A key cannot change
// role, and only the organisation's IAM admins can relabel one, so a
// listing proves ownership as well as a lookup would.
func (inv *Inventory) listedOwner(iss *issuer, keyID string) (roleID, uid string, ok bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, key := range inv.owned[issuerID(iss)] {
		if key.ID == keyID {
			return key.RoleID, key.Labels[LabelUID], true
		}
	}
	return "", "", false
}

// listIssuers reads every KeyIssuer and ClusterKeyIssuer.
func listIssuers(ctx context.Context, reader client.Reader) ([]*issuer, error) {
	var out []*issuer
	cluster := &iamv1beta1.ClusterKeyIssuerList{}
	if err := reader.List(ctx, cluster); err != nil {
		return nil, err
	}
	for i := range cluster.Items {
		out = append(out, clusterKeyIssuer(&cluster.Items[i]))
	}
	namespaced := &iamv1beta1.KeyIssuerList{}
	if err := reader.List(ctx, namespaced); err != nil {
		return nil, err
	}
	for i := range namespaced.Items {
		out = append(out, keyIssuer(&namespaced.Items[i]))
	}
	return out, nil
}
