package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// recordPending writes the intent record of a create into status, after the
// finalizer, before the create call. Both writes carry the resourceVersion:
// a pass working from a stale copy fails here, before it creates anything.
// The record lives in status because a tenant can write everything else of
// its AccessKey: a record there would be an instruction anyone could forge.
func (r *AccessKeyReconciler) recordPending(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	p iamv1beta1.PendingKey) error {
	if !controllerutil.ContainsFinalizer(ak, iamv1beta1.RevokeFinalizer) {
		base := ak.DeepCopy()
		controllerutil.AddFinalizer(ak, iamv1beta1.RevokeFinalizer)
		if err := r.Patch(ctx, ak, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			base.DeepCopyInto(ak)
			return fmt.Errorf("add the finalizer: %w", err)
		}
	}
	status.Pending = p
	if err := r.writeStatus(ctx, ak, status); err != nil {
		status.Pending = iamv1beta1.PendingKey{}
		return err
	}
	return nil
}

// DefaultPendingSettle bounds how long after it started an interrupted
// create can still produce a key. Each call exokey makes ends within its
// deadline (--exoscale-call-timeout, 30 s, operation polls included), and an
// operation Exoscale accepted ends within the minute egoscale waits for one
// (docs/reference/exoscale-facts.md, "Async operations"; how long Exoscale
// itself lets an operation run is not published). Two minutes covers both.
const DefaultPendingSettle = 2 * time.Minute

// pendingLookupPeriod is the first wait before a pending record kept for a
// create that may still be finishing is looked up again.
const pendingLookupPeriod = 5 * time.Second

// recoverPending finishes a create a previous pass started and did not
// record. The key is looked up by the name status recorded, through the
// issuer status recorded, and only keys minted for this very AccessKey are
// touched. One the Secret holds (by key ID) was published: it is adopted.
// Anything else under that name lost its secret with the crash: revoked.
// Nothing found is not proof that nothing was created while the create
// may still be finishing at Exoscale (an IAMv3 role operation that is still
// running): the record is kept, and no other key minted, until
// PendingSettle after the create started; a deferral says how long.
func (r *AccessKeyReconciler) recoverPending(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	current *corev1.Secret) error {
	pending := &status.Pending
	if pending.IsZero() {
		return nil
	}
	log := logf.FromContext(ctx).WithValues("keyName", pending.KeyName)
	iss, keys, err := r.keysOf(ctx, ak, &pending.Issuer)
	if err != nil {
		return err
	}
	found, err := keys.FindByName(ctx, pending.KeyName)
	if err != nil {
		return fmt.Errorf("look up pending key %s: %w", pending.KeyName, err)
	}
	found = mintedFor(ak, found, r.KeyNames)
	if len(found) == 0 && !r.settled.ended(ak.UID, pending.KeyName) {
		if age := r.Clock.Since(timeOf(pending.StartedAt)); age >= 0 && age < r.PendingSettle {
			log.V(1).Info("an interrupted create may still be finishing at Exoscale: its record is kept", "age", age.Round(time.Second))
			// Looked up again as the age doubles (5 s, 10 s, 20 s, ...): a
			// key that appears soon is revoked (or adopted) soon, and a
			// create that made nothing costs a handful of lookups.
			return &deferral{After: min(r.PendingSettle-age+time.Second, max(pendingLookupPeriod, age)),
				Message: fmt.Sprintf("the create of key %s may still be finishing at Exoscale", pending.KeyName)}
		}
	}
	publishedID := ""
	if current != nil && !conflictsWith(current, ak) {
		publishedID = current.Annotations[iamv1beta1.KeyIDAnnotation]
	}
	for _, key := range found {
		if key.ID != "" && key.ID == publishedID {
			consumers := r.rollTargets(ctx, ak, current.Annotations[iamv1beta1.ChecksumAnnotation])
			retired := r.promote(ak, status, key, pending.Issuer, timeOf(pending.StartedAt), retireAfterGrace, limitsOf(iss))
			awaitConsumers(ak, status, retired, consumers, r.Clock.Now())
			status.RestrictionHash, status.RotateRequest, status.CeilingHash = pending.RestrictionHash, pending.RotateRequest, pending.CeilingHash
			log.Info("adopted a key published before an interruption", "keyID", key.ID)
			r.event(ak, corev1.EventTypeNormal, EventKeyAdopted, "Adopt", "adopted key %s, published before an interruption", key.ID)
			continue
		}
		if err := keys.Revoke(ctx, key); err != nil {
			return fmt.Errorf("revoke unpublished key %s: %w", pending.KeyName, err)
		}
		log.Info("revoked a key whose create was interrupted before it was published", "keyID", key.ID, "roleID", key.RoleID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Revoke", "revoked key %s: its create was interrupted before it was published", keyLabel(key))
	}
	status.Pending = iamv1beta1.PendingKey{}
	return nil
}

// mintedFor keeps the keys minted for this very AccessKey. On IAMv3 a key's
// role carries the AccessKey's UID; a legacy key carries nothing but its
// name, which proves the UID (KeyNames), or, of the earlier form, was
// generated with a random suffix and recorded in status.
func mintedFor(ak *iamv1beta1.AccessKey, keys []exoscale.Key, names *KeyNames) []exoscale.Key {
	var out []exoscale.Key
	for _, key := range keys {
		if key.Labels != nil {
			if key.Labels[LabelUID] == string(ak.UID) {
				out = append(out, key)
			}
			continue
		}
		if owned, proving := names.proves(key.Name, ak.UID); owned || !proving {
			out = append(out, key)
		}
	}
	return out
}

// settledCreates remembers the creates whose call this process saw end
// with a key: nothing of theirs is still under way at Exoscale, so a pending
// record of one (its publication or status write failed) is settled by a
// lookup at once. A process that did not make the call (after a crash or a
// failover) waits PendingSettle instead.
type settledCreates struct {
	mu       sync.Mutex
	at       map[string]time.Time
	prunedAt time.Time
}

// end records that the create of name for uid returned a key at now, and
// forgets those older than keep.
func (s *settledCreates) end(uid types.UID, name string, now time.Time, keep time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if now.Sub(s.prunedAt) > keep/4 { // a flood of creates costs no scan each
		for k, at := range s.at {
			if now.Sub(at) > keep {
				delete(s.at, k)
			}
		}
		s.prunedAt = now
	}
	s.at[string(uid)+"/"+name] = now
}

// ended reports whether this process saw the create of name for uid end.
func (s *settledCreates) ended(uid types.UID, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.at[string(uid)+"/"+name]
	return ok
}

func keyLabel(key exoscale.Key) string {
	if key.ID != "" {
		return key.ID
	}
	return "role " + key.RoleID
}

func newPending(ak *iamv1beta1.AccessKey, iss *issuer, name string, now time.Time) iamv1beta1.PendingKey {
	return iamv1beta1.PendingKey{
		KeyName: name, StartedAt: ptr.To(metav1.NewTime(now.UTC().Truncate(time.Second))), Issuer: iss.identity(),
		RestrictionHash: restrictionHash(ak), RotateRequest: ak.Annotations[iamv1beta1.RotateAnnotation],
		CeilingHash: ceilingHash(iss),
	}
}
